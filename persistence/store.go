// Package persistence stores the gateway's durable state in one Pebble database:
// per-wallet ranges (idempotency records, buckets, claims, settlements) under a
// shard prefix, and global indexes that only point into them.
package persistence

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
)

// FormatVersion is the key layout version written under KeyFormat. A store
// written by another version is refused at start-up rather than misread.
const FormatVersion = "1"

// Errors returned by the store. Callers test them with errors.Is.
var (
	ErrClosed      = errors.New("persistence: closed")
	ErrNotFound    = errors.New("persistence: not found")
	ErrCorrupt     = errors.New("persistence: store is corrupt or unreadable")
	ErrFormat      = errors.New("persistence: unsupported format version")
	ErrUnavailable = errors.New("persistence: store unavailable")
)

// DefaultDir is the data directory used when Config.Dir is empty.
const DefaultDir = "./data"

// Config configures a Store.
type Config struct {
	// Dir is the Pebble directory. Default DefaultDir ("./data").
	Dir string
	// FS is the filesystem Pebble runs on. Default vfs.Default; tests inject
	// vfs.NewMem() or an errorfs to exercise storage faults.
	FS vfs.FS
	// CacheBytes is Pebble's block cache size. Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is Pebble's memtable size. Default 32 MiB: large enough
	// that bursts of small effect batches flush rarely (fewer L0 tables for
	// every read to probe), small enough that a memtable seek stays cheap;
	// measured against 4 MiB with BenchmarkMiss.
	MemTableBytes uint64
	// Logger receives storage events. Default slog.Default().
	Logger *slog.Logger
	// OnCommit, when set, observes each group commit (duration, number of
	// batches in the group, error). It is the hook telemetry hangs on.
	OnCommit func(d time.Duration, batches int, err error)
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("persistence: cache size %d is negative", c.CacheBytes))
	}
	return errors.Join(errs...)
}

// Store is the gateway's Pebble database plus its group committer.
type Store struct {
	cfg    Config
	db     *pebble.DB
	commit *committer
	// failed is set when a commit fails; the store reports itself unhealthy
	// until a later commit succeeds (readiness follows it).
	failed atomic.Bool
	closed atomic.Bool
}

// Open opens (creating if needed) the store in cfg.Dir. A store that cannot be
// read, is corrupt, or was written by another format version fails with an
// error wrapping ErrCorrupt or ErrFormat: start-up never proceeds silently.
func Open(cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FS == vfs.Default {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("%w: create %s: %w", ErrCorrupt, cfg.Dir, err)
		}
	}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:                 cfg.FS,
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       cfg.MemTableBytes,
		Logger:             pebbleLogger{cfg.Logger},
	}
	// Most reads on the request path look for keys that do not exist (a new
	// wallet's buckets, a new idempotency key): bloom filters answer those
	// from one block per table instead of a seek.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, filepath.Clean(cfg.Dir), err)
	}
	s := &Store{cfg: cfg, db: db}
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.commit = newCommitter(s)
	return s, nil
}

func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(KeyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		// A fresh store; an existing store without a format key is refused so
		// that a foreign Pebble directory is never taken for ours.
		it, ierr := s.db.NewIter(nil)
		if ierr != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, ierr)
		}
		empty := !it.First()
		ierr = errors.Join(it.Error(), it.Close())
		if ierr != nil {
			return fmt.Errorf("%w: scan: %w", ErrCorrupt, ierr)
		}
		if !empty {
			return fmt.Errorf("%w: %s holds data but no format version key", ErrFormat, s.cfg.Dir)
		}
		return s.db.Set(KeyFormat, []byte(FormatVersion), pebble.Sync)
	case err != nil:
		return fmt.Errorf("%w: read format version: %w", ErrCorrupt, err)
	}
	defer closer.Close()
	if string(v) != FormatVersion {
		return fmt.Errorf("%w: store has format %q, this build reads %q", ErrFormat, v, FormatVersion)
	}
	return nil
}

// DB exposes the underlying Pebble database for reads and unsynced writes.
func (s *Store) DB() *pebble.DB { return s.db }

// Healthy reports whether the last commit succeeded and the store is open.
func (s *Store) Healthy() bool { return !s.closed.Load() && !s.failed.Load() }

// Get copies the value of key into dst and returns it; ErrNotFound when absent.
func (s *Store) Get(dst, key []byte) ([]byte, error) {
	if s.closed.Load() {
		return dst, ErrClosed
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, ErrNotFound
	}
	if err != nil {
		return dst, fmt.Errorf("persistence: get: %w", err)
	}
	dst = append(dst, v...)
	closer.Close()
	return dst, nil
}

// Commit writes b synced through the group committer and blocks until it is
// durable. The batch is closed. Use Submit where blocking is not allowed.
func (s *Store) Commit(b *pebble.Batch) error {
	w := commitWaiterPool.Get().(*chanWaiter)
	s.Submit(b, w)
	err := <-w.ch
	commitWaiterPool.Put(w)
	return err
}

// Submit hands b to the group committer, which commits it synced together
// with whatever else is queued and then calls w.Committed. The batch is owned
// by the committer from here on and closed by it.
func (s *Store) Submit(b *pebble.Batch, w Waiter) {
	s.commit.submit(b, w)
}

// Close stops the committer (after it drains what is queued) and closes Pebble.
// It is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.commit.stop()
	return s.db.Close()
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	_, _ = io.WriteString(os.Stderr, fmt.Sprintf(format, args...)+"\n")
	os.Exit(1)
}

// Scan calls fn for every key with prefix, in key order, until fn returns an
// error (returned as is) or the range ends. Key and value are only valid
// during the call.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("persistence: scan: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}
