package hub

import (
	"context"
	"sync"
	"time"
)

// connCtx is a connection's context: it ends when the connection starts
// closing (cancel), and the service calls made for the connection derive
// from it.
//
// It exists to keep idle connections small. A context.WithCancel context
// allocates a map of children on the first context derived from it and
// keeps the map, empty, for as long as it lives: about 350 bytes with its
// done channel, for every connection that ever made a call, which is
// every connection (presence connect, joins). context.WithTimeout and the
// like find connCtx's AfterFunc instead, and connCtx drops its map of
// callbacks when the last call ends.
type connCtx struct {
	mu    sync.Mutex
	done  chan struct{} // made when first asked for
	err   error
	funcs map[*func()]struct{}
}

var _ context.Context = (*connCtx)(nil)

// closedChan is the Done channel of a connCtx cancelled before anyone
// asked for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (*connCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (*connCtx) Value(any) any { return nil }

func (c *connCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *connCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run once c is cancelled, as
// context.AfterFunc does; the context package uses it to cancel contexts
// derived from c.
func (c *connCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	key := &f
	if c.funcs == nil {
		c.funcs = make(map[*func()]struct{})
	}
	c.funcs[key] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.funcs[key]; !ok {
			return false // already run, or stopped
		}
		delete(c.funcs, key)
		if len(c.funcs) == 0 {
			c.funcs = nil
		}
		return true
	}
}

// cancel ends c with context.Canceled and runs the waiting callbacks,
// each on a goroutine of its own. Later calls do nothing.
func (c *connCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for f := range funcs {
		go (*f)()
	}
}
