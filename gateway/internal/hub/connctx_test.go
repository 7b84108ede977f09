package hub

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestConnCtx(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	t.Run("cancel ends it and what derives from it", func(t *testing.T) {
		c := &connCtx{}
		call, stop := context.WithTimeout(c, time.Hour)
		defer stop()
		if closed(c.Done()) || c.Err() != nil || call.Err() != nil {
			t.Fatal("ended before cancel")
		}
		c.cancel()
		c.cancel() // a second cancel does nothing
		if !closed(c.Done()) || !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("after cancel: done %v, err %v", closed(c.Done()), c.Err())
		}
		select {
		case <-call.Done():
		case <-time.After(waitTimeout):
			t.Fatal("a derived context did not end with its connection's")
		}
		if !errors.Is(call.Err(), context.Canceled) {
			t.Fatalf("derived err %v, want Canceled", call.Err())
		}
	})

	t.Run("a call that ended leaves nothing behind", func(t *testing.T) {
		c := &connCtx{}
		for range 3 {
			call, stop := context.WithTimeout(c, time.Hour)
			if c.funcs == nil {
				t.Fatal("a derived context did not register with its connection's")
			}
			stop()
			if call.Err() == nil {
				t.Fatal("stop did not end the call")
			}
		}
		if c.funcs != nil {
			t.Fatalf("%d callbacks kept after every call ended", len(c.funcs))
		}
		if c.Value("any key") != nil {
			t.Fatal("Value returned something")
		}
		if _, ok := c.Deadline(); ok {
			t.Fatal("a connection's context has a deadline")
		}
	})

	t.Run("cancelled before anything waited", func(t *testing.T) {
		c := &connCtx{}
		c.cancel()
		if !closed(c.Done()) {
			t.Fatal("Done of a cancelled context is open")
		}
		call, stop := context.WithTimeout(c, time.Hour)
		defer stop()
		if !errors.Is(call.Err(), context.Canceled) {
			t.Fatalf("derived from a cancelled context: err %v", call.Err())
		}
		ran := make(chan struct{})
		if c.AfterFunc(func() { close(ran) })() {
			t.Fatal("stop reported it stopped a callback of a cancelled context")
		}
		select {
		case <-ran:
		case <-time.After(waitTimeout):
			t.Fatal("AfterFunc on a cancelled context did not run")
		}
	})
}

// TestCallCtx checks the contexts of calls made for a connection: they end
// with the connection, and leave it without a Done channel or callbacks.
func TestCallCtx(t *testing.T) {
	h := &Hub{lim: Limits{CallTimeout: time.Hour}}
	tests := []struct {
		name string
		// cancelBefore cancels the connection before the call starts;
		// cancelDuring while it runs.
		cancelBefore, cancelDuring bool
	}{
		{name: "the call ends first"},
		{name: "the connection closes during the call", cancelDuring: true},
		{name: "the connection closed before the call", cancelBefore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &connCtx{}
			if tt.cancelBefore {
				c.cancel()
			}
			ctx, done := h.callCtx(c)
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < time.Hour-time.Minute {
				t.Fatalf("deadline %v (%v), want CallTimeout from now", dl, ok)
			}
			if tt.cancelBefore && !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("call for a closed connection: err %v", ctx.Err())
			}
			if tt.cancelDuring {
				c.cancel()
				select {
				case <-ctx.Done():
				case <-time.After(waitTimeout):
					t.Fatal("the call's context outlived the connection")
				}
			}
			if !tt.cancelBefore && !tt.cancelDuring && ctx.Err() != nil {
				t.Fatalf("call context ended early: %v", ctx.Err())
			}
			done()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("after its cancel: err %v", ctx.Err())
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.done != nil || c.funcs != nil {
				t.Fatalf("the connection keeps a Done channel (%v) or callbacks (%d)", c.done != nil, len(c.funcs))
			}
		})
	}
	// Any other parent is an ordinary parent.
	parent, cancel := context.WithCancel(context.Background())
	ctx, done := h.callCtx(parent)
	defer done()
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("derived from a cancelled parent: err %v", ctx.Err())
	}
}
