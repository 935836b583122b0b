package actors

import (
	"context"
	"sync/atomic"
)

// liveCount counts actors spawned and not yet stopped, so that a shutdown
// can wait for the last of them. It replaces a PoisonFuture per actor: a
// future costs a registered process, a watch and a timer, about half of
// what stopping a wallet actor cost, and a future that timed out (after 10s)
// was skipped silently.
type liveCount struct {
	n       atomic.Int64
	waiting atomic.Bool
	zero    chan struct{} // buffered: the stop that reaches zero never blocks
}

func newLiveCount() *liveCount { return &liveCount{zero: make(chan struct{}, 1)} }

// spawned is called before the actor is spawned.
func (c *liveCount) spawned() { c.n.Add(1) }

// stopped is the last thing an actor does (in *actor.Stopped).
func (c *liveCount) stopped() {
	if c.n.Add(-1) == 0 && c.waiting.Load() {
		select {
		case c.zero <- struct{}{}:
		default:
		}
	}
}

// wait returns nil once no actor is left, or the number still running and
// ctx's error. Call it when nothing spawns any more; after a timeout it may
// be called again. Either wait sees the count at zero or the stop that
// brought it there sees waiting set (and leaves its signal in zero).
func (c *liveCount) wait(ctx context.Context) (int64, error) {
	c.waiting.Store(true)
	if c.n.Load() == 0 {
		return 0, nil
	}
	select {
	case <-c.zero:
		return 0, nil
	case <-ctx.Done():
		return c.n.Load(), ctx.Err()
	}
}
