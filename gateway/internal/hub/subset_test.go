package hub

import (
	"fmt"
	"slices"
	"testing"
)

func TestSubSet(t *testing.T) {
	tests := []struct {
		name string
		n    int // channels joined
	}{
		{"empty", 0},
		{"one", 1},
		{"the slice's most", subSetSmall},
		{"into the map", subSetSmall + 1},
		{"many", 5 * subSetSmall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s subSet
			want := map[string]*subState{}
			for i := range tt.n {
				id := fmt.Sprintf("ch%d", i)
				st := &subState{hwm: int64(i)}
				s.set(id, st)
				want[id] = st
			}
			// Setting a joined channel again replaces its state.
			if tt.n > 0 {
				st := &subState{hwm: -1}
				s.set("ch0", st)
				want["ch0"] = st
			}
			check := func() {
				t.Helper()
				if s.len() != len(want) {
					t.Fatalf("len %d, want %d", s.len(), len(want))
				}
				for id, st := range want {
					if got := s.get(id); got != st {
						t.Fatalf("get(%s) = %p, want %p", id, got, st)
					}
				}
				if s.has("nope") || s.get("nope") != nil {
					t.Fatal("a channel never joined is found")
				}
				ids := s.ids()
				slices.Sort(ids)
				var wantIDs []string
				for id := range want {
					wantIDs = append(wantIDs, id)
				}
				slices.Sort(wantIDs)
				if !slices.Equal(ids, wantIDs) {
					t.Fatalf("ids %v, want %v", ids, wantIDs)
				}
			}
			check()
			// Remove every other channel, then one that is not joined.
			for i := 0; i < tt.n; i += 2 {
				id := fmt.Sprintf("ch%d", i)
				if !s.del(id) {
					t.Fatalf("del(%s) reported it was not joined", id)
				}
				delete(want, id)
			}
			if s.del("nope") {
				t.Fatal("del of a channel never joined reported it was")
			}
			check()
		})
	}
}
