package store

import "sync"

// seqMemo holds the channels' seq counters in memory in the one-writer
// mode, where this store is the database's only writer (see OneWriter):
// a send then reserves its seq without reading or writing the database.
// A counter is learnt the first time a channel sends after a start
// (NextSeq reads the counter document and the preview's last_seq); after
// that only the memo moves it: up on RaiseSeq, back on ReleaseSeq.
//
// What a restart learns is the preview's last_seq, which each stored
// message moves after its insert (SetLastMessage, retried by the outbox
// relay until it succeeds). A crash between the two leaves a message
// above it: the next send of that channel draws its seq, the unique
// (channel_id, seq) index refuses the insert, and the send path raises
// the counter past it and draws again, once per such message (a channel's
// sends are serialised, so there are few).
//
// Learning a counter holds the channel's stripe lock, and so does a
// reservation: a counter being read is not reserved from meanwhile.
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

// release gives seq back if it is the last one reserved.
func (m *seqMemo) release(channelID string, seq int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.seqs[channelID]; ok && cur == seq {
		m.seqs[channelID] = seq - 1
	}
}
