// Package stripe maps keys to lock stripes: a fixed array of mutexes (or
// of anything guarded by one) indexed by a hash of the key, so that work on
// one key is serialised without a lock per key. Keys sharing a stripe only
// wait for each other.
package stripe

import "sync"

// FNV-1a, 32 bits.
const (
	offset32 = 2166136261
	prime32  = 16777619
)

// Index returns key's stripe among n (n > 0). It is hash/fnv's FNV-1a
// computed inline, so it allocates nothing on the paths that call it per
// request.
func Index(key string, n int) int {
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return int(h % uint32(n))
}

// Lock locks key's mutex among mus and returns its Unlock.
func Lock(mus []sync.Mutex, key string) func() {
	m := &mus[Index(key, len(mus))]
	m.Lock()
	return m.Unlock
}
