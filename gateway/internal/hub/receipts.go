package hub

import (
	"log/slog"
	"sync"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// receiptBatcher coalesces delivered receipts: writing a message frame to a
// recipient records the seq, and one flush per ReceiptInterval publishes
// the highest seq per user and channel, so a burst of messages costs one
// receipt per recipient, not one per message.
type receiptBatcher struct {
	mu      sync.Mutex
	entries map[receiptKey]*receiptEntry
}

type receiptKey struct{ channel, user string }

type receiptEntry struct {
	seq, published int64
}

func newReceiptBatcher() *receiptBatcher {
	return &receiptBatcher{entries: make(map[receiptKey]*receiptEntry)}
}

// record notes that seq was delivered to user in channel.
func (r *receiptBatcher) record(channel, user string, seq int64) {
	k := receiptKey{channel, user}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[k]
	if e == nil {
		e = &receiptEntry{}
		r.entries[k] = e
	}
	e.seq = max(e.seq, seq)
}

// flush publishes what is new since the last flush. An entry with nothing
// new is forgotten, so the map holds only recently active pairs.
func (r *receiptBatcher) flush(publish func(channel, user string, seq int64)) {
	type out struct {
		k   receiptKey
		seq int64
	}
	var batch []out
	r.mu.Lock()
	for k, e := range r.entries {
		if e.seq <= e.published {
			delete(r.entries, k)
			continue
		}
		e.published = e.seq
		batch = append(batch, out{k, e.seq})
	}
	r.mu.Unlock()
	for _, o := range batch {
		publish(o.k.channel, o.k.user, o.seq)
	}
}

// publishReceipt publishes a delivered receipt frame on the channel.
func (h *Hub) publishReceipt(channel, user string, seq int64) {
	b, err := encodeFrame(protocol.TypeReceipt, "", channel, protocol.ReceiptData{Kind: protocol.ReceiptDelivered, Seq: seq, UserID: user}, h.now(), user)
	if err != nil {
		h.log.Error("encode receipt", slog.Any("error", err))
		return
	}
	h.publish(h.channelSubject(channel), b)
}
