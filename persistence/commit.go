package persistence

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
)

// Waiter is told when a submitted batch is durable (err == nil) or has
// failed. Committed is called from a committer goroutine and must not block.
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

// Group commit tuning. Several workers keep Pebble's pipeline busy: while
// some wait for their fsync, others apply their group to the memtable, and
// Pebble folds their WAL syncs together. A cap on the group size spreads a
// burst over the workers instead of applying it all on one goroutine.
// The committer exists so that a wallet actor never blocks on storage
// (Submit, then a message when durable) without a goroutine per batch; it
// is not faster than Pebble's own pipeline: BenchmarkSyncedCommit had it
// 6 to 27 % slower in three runs on 2026-11-27. On 2 cores, pools of
// 4x256, 8x128, 16x16, 16x64 and 32x32 were within noise of each other
// under the register load over loopback (2026-11-27).
const (
	commitWorkers   = 16
	maxGroupBatches = 16
)

// committer is the group commit: a fixed pool of goroutines, each taking
// what is queued (up to maxGroupBatches), merging it into one batch and
// committing it synced. Under load one fsync covers many requests, and no
// request needs a goroutine of its own.
type committer struct {
	s    *Store
	wg   sync.WaitGroup
	mu   sync.Mutex
	cond sync.Cond // signalled on submit and stop; guarded by mu
	// queue and stopped are guarded by mu.
	queue   []pending
	stopped bool
}

func newCommitter(s *Store) *committer {
	c := &committer{s: s}
	c.cond.L = &c.mu
	c.wg.Add(commitWorkers)
	for range commitWorkers {
		go c.run()
	}
	return c
}

func (c *committer) submit(b *pebble.Batch, w Waiter) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		_ = b.Close()
		w.Committed(ErrClosed)
		return
	}
	c.queue = append(c.queue, pending{b, w})
	c.mu.Unlock()
	c.cond.Signal()
}

// stop lets the workers finish everything already queued, then returns.
func (c *committer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cond.Broadcast()
	c.wg.Wait()
}

func (c *committer) run() {
	defer c.wg.Done()
	group := make([]pending, 0, maxGroupBatches)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.stopped {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return // stopped and drained
		}
		n := copy(group[:cap(group)], c.queue)
		group = group[:n]
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		more := rest > 0
		c.mu.Unlock()
		if more {
			c.cond.Signal() // let another worker take the rest meanwhile
		}
		c.commitGroup(group)
		clear(group)
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
			// Callers answer 503 on ErrUnavailable; Pebble's cause stays for the log.
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		c.s.failed.Store(true)
		c.s.cfg.Logger.Error("commit failed", "component", "persistence", "batches", len(group), "err", err)
	} else {
		c.s.failed.Store(false)
	}
	if c.s.cfg.OnCommit != nil {
		c.s.cfg.OnCommit(time.Since(start), len(group), err)
	}
	if f := c.s.cfg.OnCommitWaits; f != nil && err == nil {
		st := merged.CommitStats()
		f(st.SemaphoreWaitDuration, st.WALRotationDuration,
			st.MemTableWriteStallDuration+st.L0ReadAmpWriteStallDuration, st.CommitWaitDuration)
	}
	for _, p := range group {
		_ = p.b.Close()
		p.w.Committed(err)
	}
}
