package persistence

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

type countWaiter struct {
	mu   sync.Mutex
	errs []error
	wg   *sync.WaitGroup
}

func (w *countWaiter) Committed(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
	w.wg.Done()
}

func TestGroupCommitMakesEveryBatchDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	w := &countWaiter{wg: &wg}
	wg.Add(n)
	for i := range n {
		go func() {
			b := s.DB().NewBatch()
			_ = b.Set(fmt.Appendf(nil, "k/%04d", i), []byte("v"), nil)
			s.Submit(b, w)
		}()
	}
	wg.Wait()
	for _, err := range w.errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: every batch is there.
	s, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := 0
	if err := s.Scan([]byte("k/"), func(_, _ []byte) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("%d keys after reopen, want %d", got, n)
	}
}

func TestSubmitAfterCloseFails(t *testing.T) {
	s, err := Open(Config{Dir: "db", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	b := s.DB().NewBatch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := s.Commit(b); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	if _, err := s.Get(nil, KeyFormat); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

func TestOpenRefusesForeignOrNewerStores(t *testing.T) {
	fs := vfs.NewMem()
	// A Pebble directory with data but no format key is not ours.
	db, err := pebble.Open("foreign", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set([]byte("x"), []byte("y"), pebble.Sync)
	_ = db.Close()
	if _, err := Open(Config{Dir: "foreign", FS: fs}); !errors.Is(err, ErrFormat) {
		t.Fatalf("foreign store: %v", err)
	}
	// A store of another format version is refused, not misread.
	db, err = pebble.Open("newer", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set(KeyFormat, []byte("2"), pebble.Sync)
	_ = db.Close()
	if _, err := Open(Config{Dir: "newer", FS: fs}); !errors.Is(err, ErrFormat) {
		t.Fatalf("newer store: %v", err)
	}
}

func TestWalletRangesAreContiguous(t *testing.T) {
	w := []byte("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
	prefix := AppendWalletPrefix(nil, w)
	shard := AppendShardPrefix(nil, Shard(w))
	for _, k := range [][]byte{
		AppendWalletKey(nil, w, TagBuckets),
		AppendWalletKey(nil, w, TagClaim, []byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
		AppendIdempotencyKey(nil, w, "register", []byte("k")),
		AppendWalletKey(nil, w, TagSettlement, []byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
	} {
		if string(k[:len(prefix)]) != string(prefix) || string(k[:len(shard)]) != string(shard) {
			t.Errorf("%q is outside the wallet range %q / shard range %q", k, prefix, shard)
		}
	}
}

func TestIdempotencyRecordRoundTrip(t *testing.T) {
	in := Idempotency{ExpiresAt: 1234567890123, Status: 201, Problem: true, Body: []byte(`{"a":1}`)}
	in.Fingerprint[0], in.Fingerprint[31] = 7, 9
	var out Idempotency
	if err := DecodeIdempotency(AppendIdempotency(nil, &in), &out); err != nil {
		t.Fatal(err)
	}
	if out.ExpiresAt != in.ExpiresAt || out.Fingerprint != in.Fingerprint || out.Status != 201 || !out.Problem || string(out.Body) != string(in.Body) {
		t.Fatalf("round trip: %+v", out)
	}
	if err := DecodeIdempotency([]byte{1, 2, 3}, &out); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short record: %v", err)
	}
}

// Reads of absent keys must be answered by bloom filters at every level,
// the bottom one included, and the block cache must keep what reads load.
// Filters once failed silently twice over: the policy was set on an empty
// Levels slice, and Pebble's own Get skips L6 filters. (The cache failed
// only under load, when two 32 MiB memtables reserved all of 64 MiB.)
func TestReadsUseFiltersAndTheBlockCache(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2000
	b := s.DB().NewBatch()
	for i := range n {
		_ = b.Set(fmt.Appendf(nil, "present/%05d", i), []byte("v"), nil)
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Compact([]byte("present/"), []byte("present0"), true); err != nil {
		t.Fatal(err)
	}
	if files := s.DB().Metrics().Levels[6].NumFiles; files == 0 {
		t.Fatal("compaction left nothing in L6; the test would not read the bottom level")
	}
	before := s.DB().Metrics()
	for i := range n {
		if _, err := s.Get(nil, fmt.Appendf(nil, "absent/%05d", i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("absent key: %v", err)
		}
		if v, err := s.Get(nil, fmt.Appendf(nil, "present/%05d", i)); err != nil || string(v) != "v" {
			t.Fatalf("present key: %q, %v", v, err)
		}
	}
	after := s.DB().Metrics()
	if rejected := after.Filter.Hits - before.Filter.Hits; rejected < n*9/10 {
		t.Errorf("bloom filters rejected %d of %d absent keys", rejected, n)
	}
	if hits := after.BlockCache.Hits - before.BlockCache.Hits; hits < n || after.BlockCache.Size == 0 {
		t.Errorf("block cache: %d hits over %d reads, %d bytes held", hits, 2*n, after.BlockCache.Size)
	}
}

// heldFlushes blocks the creation of sstables until release is closed, so
// memtables cannot be flushed and Pebble must stall writes.
type heldFlushes struct {
	vfs.FS
	release chan struct{}
}

func (fs heldFlushes) Create(name string) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		<-fs.release
	}
	return fs.FS.Create(name)
}

// A write stall is logged when it begins and reported with its length when
// it ends; one that lasts past StallUnhealthyAfter makes the store unhealthy
// until it ends.
func TestWriteStallsAreReported(t *testing.T) {
	fs := heldFlushes{vfs.NewMem(), make(chan struct{})}
	logged := &lineWatch{want: "pebble write stall", seen: make(chan struct{})}
	stalls := make(chan time.Duration, 16)
	s, err := Open(Config{
		Dir: "db", FS: fs, MemTableBytes: 256 << 10,
		Logger:              slog.New(slog.NewTextHandler(logged, nil)),
		OnWriteStall:        func(d time.Duration) { stalls <- d },
		StallUnhealthyAfter: time.Millisecond,
		DiskSlowThreshold:   time.Hour, // the held flush is no slow disk here
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var release sync.Once
	unhold := func() { release.Do(func() { close(fs.release) }) }
	defer unhold() // before Close, which would wait for a held flush
	// Many times what two held memtables take.
	written := writeFourMiB(s)
	select {
	case <-logged.seen:
	case err := <-written:
		t.Fatalf("every write went through without a stall (err %v)", err)
	case <-time.After(time.Minute): // a bound for failing, not a guess at speed
		t.Fatal("writes are held but no stall was logged")
	}
	waitHealthy(t, s, false, "a stall began")
	unhold()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if d := <-stalls; d <= 0 {
		t.Fatalf("stall of %s", d)
	}
	if !s.Healthy() {
		t.Fatal("unhealthy after the stall ended")
	}
}

// writeFourMiB commits 4 MiB to s in synced batches of 4 KiB (keys k/00000
// to k/01023) in a goroutine of its own, and reports the first error, or
// nil when all went through.
func writeFourMiB(s *Store) <-chan error {
	written := make(chan error, 1)
	go func() {
		value := make([]byte, 4<<10)
		for i := range 1024 {
			b := s.DB().NewBatch()
			_ = b.Set(fmt.Appendf(nil, "k/%05d", i), value, nil)
			if err := s.Commit(b); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	return written
}

// lineWatch closes seen at the first log line containing want, however many
// lines come before it, and never blocks the logger.
type lineWatch struct {
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// failingCreates fails the creation of files whose names end in suffix
// while failing is set, as a full disk would: ".sst" fails Pebble's flushes
// (which it retries), ".log" a memtable rotation's new WAL file.
type failingCreates struct {
	vfs.FS
	suffix  string
	failing atomic.Bool
}

var errDiskFull = errors.New("no space left on device (test)")

func (fs *failingCreates) Create(name string) (vfs.File, error) {
	if strings.HasSuffix(name, fs.suffix) && fs.failing.Load() {
		return nil, errDiskFull
	}
	return fs.FS.Create(name)
}

// A failed flush is logged at error level and counted; once the disk works
// again Pebble's retry succeeds and the held writes go through.
func TestFailedFlushesAreLoggedAndCounted(t *testing.T) {
	fs := &failingCreates{FS: vfs.Default, suffix: ".sst"}
	fs.failing.Store(true)
	logged := &lineWatch{want: `level=ERROR msg="pebble background work failed`, seen: make(chan struct{})}
	failed := make(chan struct{})
	var once sync.Once
	s, err := Open(Config{
		Dir: t.TempDir(), FS: fs, MemTableBytes: 256 << 10,
		Logger: slog.New(slog.NewTextHandler(logged, nil)), // at info level, as sged logs by default
		OnBackgroundError: func(err error) {
			if errors.Is(err, errDiskFull) {
				once.Do(func() { close(failed) })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer fs.failing.Store(false) // a failed test leaves no writer stalled
	written := writeFourMiB(s)    // 16 memtables of 256 KiB
	for _, wait := range []struct {
		what string
		c    chan struct{}
	}{{"counted", failed}, {"logged", logged.seen}} {
		select {
		case <-wait.c:
		case err := <-written:
			t.Fatalf("every write went through and no failed flush was %s (err %v)", wait.what, err)
		case <-time.After(time.Minute): // a bound for failing, not a guess at speed
			t.Fatalf("flushes fail but none was %s", wait.what)
		}
	}
	fs.failing.Store(false)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	if v, closer, err := s.DB().Get([]byte("k/01023")); err != nil || len(v) != 4<<10 {
		t.Fatalf("last write after the flush: %d bytes, %v", len(v), err)
	} else {
		closer.Close()
	}
}

// A lasting fault fails Pebble's retries many times a second: every failure
// is counted, the log gets one line per backgroundLogEvery with the number it
// left out.
func TestBackgroundErrorLogIsThrottled(t *testing.T) {
	var out strings.Builder
	start := time.Unix(1_800_000_000, 0)
	now := start
	counted := 0
	b := &backgroundErrors{
		log:   slog.New(slog.NewJSONHandler(&out, nil)),
		count: func(error) { counted++ },
		now:   func() time.Time { return now },
	}
	for range 5 { // the first is logged, the next four are not
		b.report(errDiskFull)
		now = now.Add(time.Second)
	}
	now = start.Add(backgroundLogEvery)
	b.report(errDiskFull)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if counted != 6 || len(lines) != 2 {
		t.Fatalf("counted %d, logged %d lines:\n%s", counted, len(lines), out.String())
	}
	for i, want := range []string{`"unloggedSinceLast":0`, `"unloggedSinceLast":4`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"level":"ERROR"`) {
			t.Errorf("line %d lacks %s or level ERROR: %s", i+1, want, lines[i])
		}
	}
}

// heldSyncs holds every sync of a WAL file while hold is set, until release
// is closed: a disk that hangs.
type heldSyncs struct {
	vfs.FS
	hold    atomic.Bool
	release chan struct{}
}

func (fs *heldSyncs) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return heldSyncFile{f, fs}, nil
}

type heldSyncFile struct {
	vfs.File
	fs *heldSyncs
}

func (f heldSyncFile) Sync() error     { f.wait(); return f.File.Sync() }
func (f heldSyncFile) SyncData() error { f.wait(); return f.File.SyncData() }

// wait returns at once unless syncs are held, then when they are released.
func (f heldSyncFile) wait() {
	if f.fs.hold.Load() {
		<-f.fs.release
	}
}

// A WAL sync that does not return is logged while it lasts, before any
// request waiting on it times out, and makes the store unhealthy until a
// while after it returned.
func TestSlowDiskIsLogged(t *testing.T) {
	fs := &heldSyncs{FS: vfs.Default, release: make(chan struct{})}
	logged := &lineWatch{want: `level=WARN msg="pebble disk operation slow`, seen: make(chan struct{})}
	s, err := Open(Config{
		Dir: t.TempDir(), FS: fs, DiskSlowThreshold: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logged, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var release sync.Once
	unhold := func() { release.Do(func() { close(fs.release) }) }
	defer unhold() // before Close, which would wait for the held sync
	fs.hold.Store(true)
	committed := make(chan error, 1)
	go func() {
		b := s.DB().NewBatch()
		_ = b.Set([]byte("k"), []byte("v"), nil)
		committed <- s.Commit(b)
	}()
	select {
	case <-logged.seen:
	case err := <-committed:
		t.Fatalf("the commit returned (%v) with its WAL sync held", err)
	case <-time.After(time.Minute): // a bound for failing, not a guess at speed
		t.Fatal("a WAL sync is held but nothing was logged")
	}
	waitHealthy(t, s, false, "a WAL sync is held")
	fs.hold.Store(false)
	unhold()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, s, true, "the held sync returned")
}

// waitHealthy polls until s.Healthy() is want, failing after a minute.
func waitHealthy(t *testing.T, s *Store, want bool, after string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); s.Healthy() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("Healthy() still %v a minute after %s", !want, after)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DiskFree reports the data directory's filesystem, and the WAL
// directory's only when the WAL has one of its own.
func TestDiskFree(t *testing.T) {
	for _, tc := range []struct {
		walDir string
		want   []string
	}{{"", []string{"data"}}, {t.TempDir(), []string{"data", "wal"}}} {
		s, err := Open(Config{Dir: t.TempDir(), WALDir: tc.walDir})
		if err != nil {
			t.Fatal(err)
		}
		free := s.DiskFree()
		_ = s.Close()
		if len(free) != len(tc.want) {
			t.Errorf("WAL dir %q: %v, want %v", tc.walDir, free, tc.want)
		}
		for _, role := range tc.want {
			if free[role] == 0 {
				t.Errorf("WAL dir %q: nothing free for %s: %v", tc.walDir, role, free)
			}
		}
	}
}

// A WAL file that cannot be created breaks the store as a failed WAL write
// does: the commit that needed it fails with ErrBroken, and the store says
// it must be restarted.
func TestWALThatCannotBeCreatedBreaksTheStore(t *testing.T) {
	fs := &failingCreates{FS: vfs.Default, suffix: ".log"}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // the failure is logged at error level
	s, err := Open(Config{Dir: t.TempDir(), FS: fs, MemTableBytes: 256 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fs.failing.Store(true)
	err = <-writeFourMiB(s) // many memtables of 256 KiB, each with a WAL of its own
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), errDiskFull.Error()) {
		t.Fatalf("writes past a WAL that cannot be created: %v; want ErrBroken naming the cause", err)
	}
	if !s.Broken() || s.Healthy() {
		t.Fatalf("after the failure: broken %v, healthy %v", s.Broken(), s.Healthy())
	}
}

// Every successful group commit reports where it waited inside Pebble: each
// synced one waited for its WAL sync, and filling memtables makes some wait
// for a WAL rotation.
func TestCommitWaitsAreReported(t *testing.T) {
	var mu sync.Mutex
	var groups, reports, synced, rotated int
	s, err := Open(Config{
		Dir:           t.TempDir(),
		MemTableBytes: 1 << 20,
		OnCommit:      func(time.Duration, int, error) { mu.Lock(); groups++; mu.Unlock() },
		OnCommitWaits: func(_, walRotation, _, walSync time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			reports++
			if walSync > 0 {
				synced++
			}
			if walRotation > 0 {
				rotated++
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// 4 MiB in 64 KiB batches, one at a time: Pebble's first memtable is
	// 256 KiB and the next ones up to 1 MiB, so several fill.
	value := make([]byte, 64<<10)
	const n = 64
	for i := range n {
		b := s.DB().NewBatch()
		_ = b.Set(fmt.Appendf(nil, "k/%04d", i), value, nil)
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if groups != n || reports != n {
		t.Fatalf("%d groups committed, %d reported, want %d each", groups, reports, n)
	}
	if synced != n {
		t.Errorf("%d of %d synced commits report a WAL sync wait", synced, n)
	}
	if rotated == 0 {
		t.Error("no commit reports a WAL rotation after 4 MiB through 1 MiB memtables")
	}
}
