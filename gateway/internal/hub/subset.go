package hub

// subSet is a connection's joined channels, owned by its read side. Most
// connections join a few channels, and a Go map costs about 300 bytes even
// for one entry, which every idle connection would keep: so the set is a
// slice up to subSetSmall entries and a map beyond.
type subSet struct {
	small []subEntry
	large map[string]*subState
}

type subEntry struct {
	id string
	st *subState
}

// subSetSmall is the most entries kept in the slice; a lookup compares at
// most this many ids.
const subSetSmall = 8

func (s *subSet) len() int {
	if s.large != nil {
		return len(s.large)
	}
	return len(s.small)
}

// get returns the channel's state, or nil when it is not joined.
func (s *subSet) get(id string) *subState {
	if s.large != nil {
		return s.large[id]
	}
	for _, e := range s.small {
		if e.id == id {
			return e.st
		}
	}
	return nil
}

func (s *subSet) has(id string) bool { return s.get(id) != nil }

// set adds or replaces the channel's state (st is never nil).
func (s *subSet) set(id string, st *subState) {
	if s.large != nil {
		s.large[id] = st
		return
	}
	for i := range s.small {
		if s.small[i].id == id {
			s.small[i].st = st
			return
		}
	}
	if len(s.small) < subSetSmall {
		s.small = append(s.small, subEntry{id, st})
		return
	}
	s.large = make(map[string]*subState, 2*subSetSmall)
	for _, e := range s.small {
		s.large[e.id] = e.st
	}
	s.large[id] = st
	s.small = nil
}

// del removes the channel; it reports whether it was joined.
func (s *subSet) del(id string) bool {
	if s.large != nil {
		_, ok := s.large[id]
		delete(s.large, id)
		return ok
	}
	for i, e := range s.small {
		if e.id == id {
			last := len(s.small) - 1
			s.small[i] = s.small[last]
			s.small[last] = subEntry{}
			s.small = s.small[:last]
			return true
		}
	}
	return false
}

// ids returns the joined channels' ids, in no particular order.
func (s *subSet) ids() []string {
	out := make([]string, 0, s.len())
	for id := range s.large {
		out = append(out, id)
	}
	for _, e := range s.small {
		out = append(out, e.id)
	}
	return out
}
