package stripe

import (
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
)

func TestIndex(t *testing.T) {
	tests := []struct {
		key string
		n   int
	}{
		{"", 1}, {"", 64}, {"a", 64}, {"channel-42", 256}, {"n1/d7", 64}, {"ü-non-ascii", 7},
	}
	for _, tt := range tests {
		h := fnv.New32a()
		_, _ = h.Write([]byte(tt.key))
		want := int(h.Sum32() % uint32(tt.n))
		if got := Index(tt.key, tt.n); got != want {
			t.Errorf("Index(%q, %d) = %d, want %d (hash/fnv's FNV-1a)", tt.key, tt.n, got, want)
		}
	}
}

// TestIndexSpreads: keys that differ only in their digits land on many
// stripes.
func TestIndexSpreads(t *testing.T) {
	const n = 64
	seen := map[int]bool{}
	for i := range 1000 {
		seen[Index(fmt.Sprintf("channel-%d", i), n)] = true
	}
	if len(seen) < n*3/4 {
		t.Fatalf("1,000 keys fell on %d of %d stripes", len(seen), n)
	}
}

func TestIndexAllocatesNothing(t *testing.T) {
	if a := testing.AllocsPerRun(100, func() { _ = Index("channel-42", 256) }); a != 0 {
		t.Fatalf("Index allocates %v times per call", a)
	}
}

// TestLock: Lock holds the key's stripe, and only it, until its unlock.
func TestLock(t *testing.T) {
	var mus [8]sync.Mutex
	unlock := Lock(mus[:], "channel-42")
	held := Index("channel-42", len(mus))
	for i := range mus {
		if got := mus[i].TryLock(); got == (i == held) {
			t.Errorf("stripe %d: TryLock = %v while stripe %d is held", i, got, held)
		} else if got {
			mus[i].Unlock()
		}
	}
	unlock()
	if !mus[held].TryLock() {
		t.Fatal("stripe still held after unlock")
	}
}
