package store

import (
	"fmt"
	"testing"
	"time"
)

// The memo drops expired entries once a stripe is large, so it holds only
// the channels active within the TTL.
func TestPreviewStripePrunes(t *testing.T) {
	var p previewStripe
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range previewMemoPrune {
		p.remember(fmt.Sprint("old", i), int64(i), t0)
	}
	later := t0.Add(previewMemoTTL)
	p.remember("fresh", 1, later)
	if len(p.seqs) != 1 {
		t.Fatalf("after pruning: %d entries, want 1", len(p.seqs))
	}
	if seq, ok := p.lookup("fresh", later); !ok || seq != 1 {
		t.Fatalf("fresh entry: %d %v", seq, ok)
	}
	if _, ok := p.lookup("fresh", later.Add(previewMemoTTL)); ok {
		t.Fatal("an entry older than the TTL is trusted")
	}

	// A stripe of many live channels is swept again only once it has
	// doubled, not on every send: 512 live entries cost one sweep (at
	// 256), and the sweep at 512 drops them once they have expired.
	var q previewStripe
	for i := range 2 * previewMemoPrune {
		q.remember(fmt.Sprint("live", i), 1, later)
	}
	if len(q.seqs) != 2*previewMemoPrune || q.pruneAt != 2*previewMemoPrune {
		t.Fatalf("%d entries, next sweep at %d; want %d and %d", len(q.seqs), q.pruneAt, 2*previewMemoPrune, 2*previewMemoPrune)
	}
	q.remember("last", 1, later.Add(previewMemoTTL))
	if len(q.seqs) != 1 {
		t.Fatalf("after the sweep at twice the size: %d entries, want 1", len(q.seqs))
	}
}
