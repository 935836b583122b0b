package persistence

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
)

// Waiter is told when a submitted batch is durable (err == nil) or has
// failed. Committed is called from the committer goroutine and must not block.
type Waiter interface {
	Committed(err error)
}

type chanWaiter struct{ ch chan error }

func (w *chanWaiter) Committed(err error) { w.ch <- err }

var commitWaiterPool = sync.Pool{New: func() any { return &chanWaiter{ch: make(chan error, 1)} }}

type pending struct {
	b *pebble.Batch
	w Waiter
}

// committer is the group commit: one goroutine takes everything queued since
// its last fsync, merges it into one batch and commits it synced. While one
// group syncs the next one queues, so under load a single fsync covers many
// requests and no request needs a goroutine of its own.
type committer struct {
	s    *Store
	wake chan struct{}
	done chan struct{}
	mu   struct {
		sync.Mutex
		queue   []pending
		stopped bool
	}
}

func newCommitter(s *Store) *committer {
	c := &committer{s: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) submit(b *pebble.Batch, w Waiter) {
	c.mu.Lock()
	if c.mu.stopped {
		c.mu.Unlock()
		_ = b.Close()
		w.Committed(ErrClosed)
		return
	}
	c.mu.queue = append(c.mu.queue, pending{b, w})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stop lets the committer finish everything already queued, then returns.
func (c *committer) stop() {
	c.mu.Lock()
	c.mu.stopped = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	var group []pending
	for range c.wake {
		for {
			c.mu.Lock()
			group, c.mu.queue = c.mu.queue, group[:0]
			stopped := c.mu.stopped
			c.mu.Unlock()
			if len(group) == 0 {
				if stopped {
					return
				}
				break
			}
			c.commitGroup(group)
			clear(group)
		}
	}
}

func (c *committer) commitGroup(group []pending) {
	start := time.Now()
	merged := group[0].b
	var err error
	for _, p := range group[1:] {
		if err = merged.Apply(p.b, nil); err != nil {
			break
		}
	}
	if err == nil {
		// Not usable(): batches queued before Close are still committed.
		if c.s.broken.Load() {
			err = fmt.Errorf("%w: %w", ErrUnavailable, ErrBroken)
		} else {
			err = c.s.apply(merged, pebble.Sync)
		}
	}
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			err = errorsJoinUnavailable(err)
		}
		c.s.failed.Store(true)
		c.s.cfg.Logger.Error("commit failed", "component", "persistence", "batches", len(group), "err", err)
	} else {
		c.s.failed.Store(false)
	}
	if c.s.cfg.OnCommit != nil {
		c.s.cfg.OnCommit(time.Since(start), len(group), err)
	}
	for _, p := range group {
		_ = p.b.Close()
		p.w.Committed(err)
	}
}
