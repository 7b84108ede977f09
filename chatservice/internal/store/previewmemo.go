package store

import (
	"sync"
	"time"
)

// previewMemoTTL bounds how long a remembered last_seq is trusted.
const previewMemoTTL = 5 * time.Second

// previewMemoPrune is the smallest stripe size at which expired entries
// are dropped, so the memo stays proportional to the channels active
// within the TTL. After a sweep the next one waits until the stripe has
// doubled, so a stripe of many active channels is not swept on every send.
const previewMemoPrune = 256

// previewStripe is one lock stripe of the preview memo.
type previewStripe struct {
	mu      sync.Mutex
	seqs    map[string]previewSeen
	pruneAt int // size that triggers the next sweep; 0: previewMemoPrune
}

type previewSeen struct {
	seq int64
	at  time.Time
}

func (p *previewStripe) lookup(channelID string, now time.Time) (int64, bool) {
	e, ok := p.seqs[channelID]
	if !ok || now.Sub(e.at) >= previewMemoTTL {
		return 0, false
	}
	return e.seq, true
}

func (p *previewStripe) remember(channelID string, seq int64, now time.Time) {
	if p.seqs == nil {
		p.seqs = make(map[string]previewSeen)
	}
	if len(p.seqs) >= max(p.pruneAt, previewMemoPrune) {
		for id, e := range p.seqs {
			if now.Sub(e.at) >= previewMemoTTL {
				delete(p.seqs, id)
			}
		}
		p.pruneAt = 2 * len(p.seqs)
	}
	p.seqs[channelID] = previewSeen{seq: seq, at: now}
}

func (p *previewStripe) forget(channelID string) { delete(p.seqs, channelID) }
