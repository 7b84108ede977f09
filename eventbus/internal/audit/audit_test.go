package audit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventbus"
)

// fakeStore serves List from a fixed slice and records what it was asked.
type fakeStore struct {
	evs       []eventbus.Event
	lastAfter *Cursor
	lastLimit int
	insertErr []error
}

func (f *fakeStore) Insert(context.Context, []eventbus.Event) []error { return f.insertErr }
func (f *fakeStore) Get(_ context.Context, id string) (eventbus.Event, error) {
	for _, ev := range f.evs {
		if ev.ID == id {
			return ev, nil
		}
	}
	return eventbus.Event{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}
func (f *fakeStore) List(_ context.Context, _ Filter, after *Cursor, limit int) ([]eventbus.Event, error) {
	f.lastAfter, f.lastLimit = after, limit
	if limit > len(f.evs) {
		return f.evs, nil
	}
	return f.evs[:limit], nil
}

type fakeDLQ struct {
	query   eventbus.DeadLetterQuery
	page    eventbus.DeadLetterPage
	retried []uint64
	err     error
}

func (f *fakeDLQ) List(_ context.Context, q eventbus.DeadLetterQuery) (eventbus.DeadLetterPage, error) {
	f.query = q
	return f.page, f.err
}
func (f *fakeDLQ) Retry(_ context.Context, seq uint64) (eventbus.DeadLetter, error) {
	f.retried = append(f.retried, seq)
	return eventbus.DeadLetter{Seq: seq}, f.err
}
func (f *fakeDLQ) Discard(context.Context, uint64) error { return f.err }

func events(n int) []eventbus.Event {
	evs := make([]eventbus.Event, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = eventbus.Event{ID: fmt.Sprintf("e%03d", n-i), Type: "t.x", Source: "s", Timestamp: base.Add(-time.Duration(i) * time.Second)}
	}
	return evs
}

func TestListEventsPaging(t *testing.T) {
	tests := []struct {
		name      string
		stored    int
		pageSize  int
		wantLen   int
		wantLimit int
		wantNext  bool
	}{
		{name: "default size, one page", stored: 10, pageSize: 0, wantLen: 10, wantLimit: DefaultPageSize + 1},
		{name: "exact page has no next", stored: 5, pageSize: 5, wantLen: 5, wantLimit: 6},
		{name: "more than a page", stored: 8, pageSize: 5, wantLen: 5, wantLimit: 6, wantNext: true},
		{name: "size capped", stored: 300, pageSize: 1000, wantLen: MaxPageSize, wantLimit: MaxPageSize + 1, wantNext: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{evs: events(tt.stored)}
			l := New(st, &fakeDLQ{}, nil)
			page, err := l.ListEvents(context.Background(), Filter{}, "", tt.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) != tt.wantLen || st.lastLimit != tt.wantLimit || (page.NextPageToken != "") != tt.wantNext {
				t.Fatalf("got %d events, limit %d, next %q", len(page.Events), st.lastLimit, page.NextPageToken)
			}
			if !tt.wantNext {
				return
			}
			// The token continues after the last event of the page.
			if _, err := l.ListEvents(context.Background(), Filter{}, page.NextPageToken, tt.pageSize); err != nil {
				t.Fatal(err)
			}
			last := page.Events[len(page.Events)-1]
			if st.lastAfter == nil || st.lastAfter.ID != last.ID || !st.lastAfter.Timestamp.Equal(last.Timestamp) {
				t.Errorf("cursor = %+v, want after %s", st.lastAfter, last.ID)
			}
		})
	}
}

func TestListEventsInvalid(t *testing.T) {
	l := New(&fakeStore{}, &fakeDLQ{}, nil)
	now := time.Now()
	tests := []struct {
		name  string
		f     Filter
		token string
		size  int
	}{
		{name: "bad token", token: "!!!"},
		{name: "token not json", token: "bm90IGpzb24"},
		{name: "token without id", token: "eyJ0IjoxfQ"},
		{name: "negative size", size: -1},
		{name: "empty range", f: Filter{From: now, To: now}},
		{name: "reversed range", f: Filter{From: now, To: now.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.ListEvents(context.Background(), tt.f, tt.token, tt.size); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("error = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestGetEvent(t *testing.T) {
	l := New(&fakeStore{evs: events(3)}, &fakeDLQ{}, nil)
	if ev, err := l.GetEvent(context.Background(), "e002"); err != nil || ev.ID != "e002" {
		t.Errorf("GetEvent = %+v, %v", ev, err)
	}
	if _, err := l.GetEvent(context.Background(), "zzz"); !IsNotFound(err) {
		t.Errorf("GetEvent(missing) = %v, want not found", err)
	}
	if _, err := l.GetEvent(context.Background(), ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("GetEvent(\"\") = %v, want invalid", err)
	}
}

func TestDeadLetters(t *testing.T) {
	dlq := &fakeDLQ{page: eventbus.DeadLetterPage{DeadLetters: []eventbus.DeadLetter{{Seq: 9}, {Seq: 7}}, Next: 7}}
	l := New(&fakeStore{}, dlq, nil)
	ctx := context.Background()
	page, err := l.ListDeadLetters(ctx, "", 2)
	if err != nil || len(page.DeadLetters) != 2 || page.NextPageToken == "" {
		t.Fatalf("ListDeadLetters = %+v, %v", page, err)
	}
	if !dlq.query.NewestFirst || dlq.query.Limit != 2 || dlq.query.Cursor != 0 {
		t.Errorf("query = %+v", dlq.query)
	}
	if _, err := l.ListDeadLetters(ctx, page.NextPageToken, 2); err != nil || dlq.query.Cursor != 7 {
		t.Errorf("second page: cursor %d, %v", dlq.query.Cursor, err)
	}
	if _, err := l.ListDeadLetters(ctx, "garbage", 2); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad token: %v", err)
	}
	if err := l.RetryDeadLetter(ctx, DeadLetterID(9)); err != nil || len(dlq.retried) != 1 || dlq.retried[0] != 9 {
		t.Errorf("Retry: %v, retried %v", err, dlq.retried)
	}
	for _, id := range []string{"0", "x", "-1", ""} {
		if err := l.RetryDeadLetter(ctx, id); !IsNotFound(err) {
			t.Errorf("Retry(%q) = %v, want not found", id, err)
		}
		if err := l.DiscardDeadLetter(ctx, id); !IsNotFound(err) {
			t.Errorf("Discard(%q) = %v, want not found", id, err)
		}
	}
	dlq.err = fmt.Errorf("wrapped: %w", eventbus.ErrDeadLetterNotFound)
	if err := l.DiscardDeadLetter(ctx, "5"); !IsNotFound(err) {
		t.Errorf("Discard of a vanished dead letter = %v, want not found", err)
	}
}

func TestRecordReturnsStoreErrors(t *testing.T) {
	boom := errors.New("disk full")
	l := New(&fakeStore{insertErr: []error{nil, boom}}, &fakeDLQ{}, nil)
	errs := l.Record(context.Background(), events(2))
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], boom) {
		t.Errorf("Record = %v", errs)
	}
}
