package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/eventbus/internal/audit"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) *EventStore {
	t.Helper()
	db := testenv.New(t).Mongo(t)
	s := New(db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes is not idempotent: %v", err)
	}
	return s
}

func event(t *testing.T, typ, source, subject string, ts time.Time, data string) eventbus.Event {
	t.Helper()
	id, err := eventbus.NewID()
	if err != nil {
		t.Fatal(err)
	}
	return eventbus.Event{ID: id, Type: typ, Source: source, Subject: subject, Data: json.RawMessage(data), Timestamp: ts, Version: 1}
}

func TestInsertIsIdempotent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	a := event(t, eventbus.TypeMessageSent, "chatservice", "c1", base, `{"text":"hi","n":1.5,"$oid":"x"}`)
	b := event(t, eventbus.TypeUserJoined, "chatservice", "c1", base.Add(time.Second), `[1,2]`)
	if errs := s.Insert(ctx, []eventbus.Event{a}); errs != nil {
		t.Fatalf("Insert: %v", errs)
	}
	// a again, b new, b twice in the same batch: all count as recorded.
	if errs := s.Insert(ctx, []eventbus.Event{a, b, b}); errs != nil {
		for _, err := range errs {
			if err != nil {
				t.Errorf("Insert with duplicates: %v", err)
			}
		}
	}
	n, err := s.Count(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(a.Data) || !got.Timestamp.Equal(a.Timestamp) || got.Type != a.Type ||
		got.Source != a.Source || got.Subject != a.Subject || got.Version != 1 {
		t.Errorf("Get = %+v, want %+v", got, a)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func TestList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var all []eventbus.Event
	for i := range 12 {
		typ := eventbus.TypeMessageSent
		if i%3 == 0 {
			typ = eventbus.TypeUserJoined
		}
		src := "chatservice"
		if i%4 == 0 {
			src = "userservice"
		}
		// Pairs share a millisecond, so paging must order by id within it.
		ts := base.Add(time.Duration(i/2) * time.Second).Add(time.Duration(i%2) * time.Microsecond)
		all = append(all, event(t, typ, src, fmt.Sprintf("c%d", i%2), ts, `{}`))
	}
	if errs := s.Insert(ctx, all); errs != nil {
		t.Fatalf("Insert: %v", errs)
	}
	count := func(pred func(eventbus.Event) bool) int {
		n := 0
		for _, ev := range all {
			if pred(ev) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name   string
		filter audit.Filter
		want   int
	}{
		{name: "all", want: 12},
		{name: "type", filter: audit.Filter{Type: eventbus.TypeUserJoined}, want: count(func(e eventbus.Event) bool { return e.Type == eventbus.TypeUserJoined })},
		{name: "source", filter: audit.Filter{Source: "userservice"}, want: count(func(e eventbus.Event) bool { return e.Source == "userservice" })},
		{name: "subject", filter: audit.Filter{Subject: "c1"}, want: 6},
		{name: "type and subject", filter: audit.Filter{Type: eventbus.TypeMessageSent, Subject: "c0"},
			want: count(func(e eventbus.Event) bool { return e.Type == eventbus.TypeMessageSent && e.Subject == "c0" })},
		{name: "time range", filter: audit.Filter{From: base.Add(time.Second), To: base.Add(3 * time.Second)}, want: 4},
		{name: "nothing", filter: audit.Filter{Type: "nope"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Page through 5 at a time; the union must be every match,
			// newest first, without repeats.
			var got []eventbus.Event
			var after *audit.Cursor
			for range 10 {
				page, err := s.List(ctx, tt.filter, after, 5)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				if len(page) < 5 {
					break
				}
				last := page[len(page)-1]
				after = &audit.Cursor{Timestamp: last.Timestamp, ID: last.ID}
			}
			if len(got) != tt.want {
				t.Fatalf("listed %d events, want %d", len(got), tt.want)
			}
			seen := map[string]bool{}
			for i, ev := range got {
				if seen[ev.ID] {
					t.Errorf("event %s listed twice", ev.ID)
				}
				seen[ev.ID] = true
				if i > 0 {
					prev := got[i-1]
					pt, ct := prev.Timestamp.Truncate(time.Millisecond), ev.Timestamp.Truncate(time.Millisecond)
					if ct.After(pt) || ct.Equal(pt) && ev.ID > prev.ID {
						t.Errorf("not newest first at %d: %v/%s after %v/%s", i, ev.Timestamp, ev.ID, prev.Timestamp, prev.ID)
					}
				}
			}
		})
	}
}
