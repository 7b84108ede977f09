package store

import (
	"sync"

	"github.com/parleyhq/parley/platform/stripe"
)

// seqBlock is how many seqs of a channel one write of its counter
// reserves in the one-writer mode.
const seqBlock = 16

// seqMemo holds the channels' seq counters in memory in the one-writer
// mode, where this store is the database's only writer (see OneWriter).
// Seqs are reserved in blocks: the counter document is moved seqBlock
// ahead, and the next seqBlock sends of the channel take their seqs from
// memory without reading or writing the database. The counter document
// is therefore never below a seq handed out, and a restart continues
// above every stored message (a crash skips the rest of each block: seqs
// may have gaps, which clients already accept). A channel's counter is
// learnt at its first send after a start, as the higher of its counter
// document and its preview's last_seq.
//
// Learning or reserving holds the channel's stripe lock, and so does
// handing out a seq: a block being reserved is not handed out from
// meanwhile.
type seqMemo struct {
	loads [32]sync.Mutex // by channel: held while a counter is read or reserved

	mu   sync.Mutex
	seqs map[string]seqRange
}

// seqRange is a channel's counter: the last seq handed out, and the
// highest one reserved (the counter document's value).
type seqRange struct {
	last, reserved int64
}

// lockChannel holds channelID's stripe; call the returned func to
// release it.
func (m *seqMemo) lockChannel(channelID string) func() {
	return stripe.Lock(m.loads[:], channelID)
}

// next hands out the seq after the last one, if it is reserved.
func (m *seqMemo) next(channelID string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.seqs[channelID]
	if !ok || r.last >= r.reserved {
		return 0, false
	}
	r.last++
	m.seqs[channelID] = r
	return r.last, true
}

// last returns the last seq handed out, if the channel's counter is
// known.
func (m *seqMemo) last(channelID string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.seqs[channelID]
	return r.last, ok
}

// set records a channel's counter after a reservation.
func (m *seqMemo) set(channelID string, r seqRange) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seqs == nil {
		m.seqs = make(map[string]seqRange)
	}
	m.seqs[channelID] = r
}

// release gives seq back if it is the last one handed out.
func (m *seqMemo) release(channelID string, seq int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.seqs[channelID]; ok && r.last == seq {
		r.last--
		m.seqs[channelID] = r
	}
}

// raise moves the last seq handed out up to seq within the reserved
// block, or drops the counter, to be learnt again, if seq is past it.
func (m *seqMemo) raise(channelID string, seq int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.seqs[channelID]
	switch {
	case !ok:
	case seq < r.reserved:
		r.last = max(r.last, seq)
		m.seqs[channelID] = r
	default:
		delete(m.seqs, channelID)
	}
}
