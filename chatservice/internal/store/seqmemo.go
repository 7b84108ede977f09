package store

import "sync"

// seqMemo holds the channels' seq counters in memory in the one-writer
// mode, where this store is the database's only writer (see OneWriter):
// the counter a store wrote last is then the counter's value, and the
// next seq needs no read. A counter is learnt from the database the
// first time (findAndModify, as without the memo), and forgotten when a
// write of it fails or another path moves it (RaiseSeq, ReleaseSeq), so
// the next NextSeq reads it again.
//
// Learning a counter holds the channel's stripe lock, and so does a
// reservation: a counter being read is not reserved from meanwhile.
//
// If another process wrote the counters after all, or a counter is read
// again while a reservation of the same channel is still being written
// (the send path serialises a channel's sends, so it does not), a seq
// could be handed out twice; the unique (channel_id, seq) index refuses
// the second message and the send path raises the counter (RaiseSeq),
// which also drops the memo.
type seqMemo struct {
	loads [32]sync.Mutex // by channel: held while a counter is read

	mu   sync.Mutex
	seqs map[string]int64
}

// lockChannel holds channelID's stripe; call the returned func to
// release it.
func (m *seqMemo) lockChannel(channelID string) func() {
	mu := &m.loads[stripe(channelID, len(m.loads))]
	mu.Lock()
	return mu.Unlock
}

// next reserves the seq after the remembered one, if any.
func (m *seqMemo) next(channelID string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seq, ok := m.seqs[channelID]
	if !ok {
		return 0, false
	}
	m.seqs[channelID] = seq + 1
	return seq + 1, true
}

// learn remembers a counter value read from the database, unless a
// higher one is known.
func (m *seqMemo) learn(channelID string, seq int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seqs == nil {
		m.seqs = make(map[string]int64)
	}
	if cur, ok := m.seqs[channelID]; !ok || seq > cur {
		m.seqs[channelID] = seq
	}
}

// forget drops a channel's counter.
func (m *seqMemo) forget(channelID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seqs, channelID)
}
