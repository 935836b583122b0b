package gateway_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

var errInjected = errors.New("injected I/O error")

// walWriteFaults fails writes to the write-ahead log (Pebble's *.log files)
// while on; everything else reaches the real disk.
func walWriteFaults(on *atomic.Bool) vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(o errorfs.Op, path string) error {
		if on.Load() && o == errorfs.OpFileWrite && strings.HasSuffix(path, ".log") {
			return errInjected
		}
		return nil
	}))
}

// walSyncFaults fails syncs of the write-ahead log while on. errorfs
// v1.1.5 does not inject into SyncData, which is how Pebble syncs its WAL,
// hence this wrapper.
type walSyncFaults struct {
	vfs.FS
	on *atomic.Bool
}

func (fs walSyncFaults) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return syncFaultFile{f, fs.on}, nil
}

func (fs walSyncFaults) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

func (fs walSyncFaults) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

type syncFaultFile struct {
	vfs.File
	on *atomic.Bool
}

func (f syncFaultFile) Sync() error     { return f.fail(f.File.Sync) }
func (f syncFaultFile) SyncData() error { return f.fail(f.File.SyncData) }
func (f syncFaultFile) SyncTo(n int64) (bool, error) {
	if f.on.Load() {
		return false, errInjected
	}
	return f.File.SyncTo(n)
}

func (f syncFaultFile) fail(sync func() error) error {
	if f.on.Load() {
		return errInjected
	}
	return sync()
}

// A failed WAL write or sync answers 503, takes the service out of
// rotation (/readyz and /healthz 503, since Pebble v1.1.5 cannot commit again
// after it), is logged and counted, and costs nothing durable: after a
// restart a retry with the same key yields exactly one settlement.
func TestWALFaultAnswers503AndRetrySucceedsAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(*atomic.Bool) vfs.FS
		// inDoubt: the record reached the OS before the sync failed, so
		// Pebble may replay it on open; the retry then replays the answer.
		inDoubt bool
	}{
		{"write", walWriteFaults, false},
		{"sync", func(on *atomic.Bool) vfs.FS { return walSyncFaults{vfs.Default, on} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fail atomic.Bool
			logs := &sgetest.LogBuffer{}
			e := sgetest.Start(t, func(c *gateway.Config) {
				c.Store.FS = tc.fs(&fail)
				c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			})
			w1, w2 := sgetest.Wallet(), sgetest.Wallet()
			if r := e.Post(t, "/api/register", "k1", registerBody(w1)); r.Status != 201 {
				t.Fatalf("before the fault: %d %s", r.Status, r.Body)
			}
			if !strings.Contains(string(e.Do(t, "GET", "/metrics", "").Body), "\nsge_ready 1\n") {
				t.Fatal("sge_ready is not 1 before the fault")
			}

			fail.Store(true)
			r := e.Post(t, "/api/register", "k2", registerBody(w2))
			if r.Status != 503 || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("during the fault: %d %q %s", r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			if r.Header.Get("X-Idempotency") != "" {
				t.Fatalf("a failed attempt claims an idempotency result: %q", r.Header.Get("X-Idempotency"))
			}
			for _, probe := range []string{"/readyz", "/healthz"} {
				if p := e.Do(t, "GET", probe, ""); p.Status != 503 {
					t.Fatalf("%s during the fault: %d", probe, p.Status)
				}
			}
			if !strings.Contains(string(e.Do(t, "GET", "/metrics", "").Body), "\nsge_ready 0\n") {
				t.Fatal("sge_ready is not 0 while /readyz answers 503")
			}
			if n := counterValue(t, e, "sge_storage_errors_total", "op", "commit"); n < 1 {
				t.Fatalf("sge_storage_errors_total{op=commit} = %v", n)
			}
			if !strings.Contains(logs.String(), "write-ahead log failed") {
				t.Fatalf("no log line for the failure:\n%s", logs)
			}
			// The store stays off: other wallets and the same key get 503
			// promptly, and nothing reads the memtable holding the failed batch.
			start := time.Now()
			for _, body := range []string{registerBody(sgetest.Wallet()), registerBody(w2)} {
				if r := e.Post(t, "/api/register", "k2", body); r.Status != 503 {
					t.Fatalf("after the fault: %d %s", r.Status, r.Body)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("503s took %s", d)
			}
			if err := e.StopErr(); !errors.Is(err, persistence.ErrBroken) {
				t.Fatalf("shutdown after the fault: %v", err)
			}

			fail.Store(false)
			cfg := e.Config()
			cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			e = sgetest.StartWith(t, cfg)
			if p := e.Do(t, "GET", "/readyz", ""); p.Status != 200 {
				t.Fatalf("readyz after restart: %d", p.Status)
			}
			r = e.Post(t, "/api/register", "k2", registerBody(w2))
			if r.Status != 201 {
				t.Fatalf("retry after restart: %d %s", r.Status, r.Body)
			}
			if got := r.Header.Get("X-Idempotency"); got != "MISS" && !(tc.inDoubt && got == "HIT") {
				t.Fatalf("retry after restart: X-Idempotency %q", got)
			}
			t.Logf("retry after restart: X-Idempotency %s", r.Header.Get("X-Idempotency"))
			sts := e.Settlements(t, w2)
			if len(sts) != 1 || sts[0].ID != r.JSON(t)["settlementId"] {
				t.Fatalf("settlements for the retried key: %+v, answer %s", sts, r.Body)
			}
			if r := e.Post(t, "/api/register", "k1", registerBody(w1)); r.Header.Get("X-Idempotency") != "HIT" {
				t.Fatalf("the commit before the fault was lost: %d %s", r.Status, r.Body)
			}
		})
	}
}

// A flush that fails (sstables cannot be created, as on a full disk) is
// logged and counted as a background storage error while the WAL keeps
// taking writes; once the memtables are full the writes stall, a request
// waiting on one gets 503 at the answer timeout, and a stall that lasts
// takes the service out of rotation until the fault clears.
func TestFailedFlushesAreCountedAndAStallTakesReadiness(t *testing.T) {
	var fail atomic.Bool
	logs := &sgetest.LogBuffer{}
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Store.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(o errorfs.Op, path string) error {
			if fail.Load() && o == errorfs.OpCreate && strings.HasSuffix(path, ".sst") {
				return errInjected
			}
			return nil
		}))
		c.Store.MemTableBytes = 256 << 10
		c.Store.StallUnhealthyAfter = time.Millisecond
		c.Actors.AnswerTimeout = 2 * time.Second
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	defer fail.Store(false) // a failed test leaves no writer stalled
	if r := e.Post(t, "/api/register", "k1", registerBody(sgetest.Wallet())); r.Status != 201 {
		t.Fatalf("before the fault: %d %s", r.Status, r.Body)
	}
	fail.Store(true)
	if r := e.Post(t, "/api/register", "k2", registerBody(sgetest.Wallet())); r.Status != 201 {
		t.Fatalf("with the fault, before any flush: %d %s", r.Status, r.Body)
	}
	written := make(chan error, 1)
	go func() { // 4 MiB: many memtables of 256 KiB, so flushes must run
		store, value := e.Gateway.Store, make([]byte, 4<<10)
		for i := range 1024 {
			b := store.DB().NewBatch()
			_ = b.Set(fmt.Appendf(nil, "test/%05d", i), value, nil)
			if err := store.Commit(b); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	sgetest.Eventually(t, time.Minute, "a failed flush counted", func() bool {
		return counterValue(t, e, "sge_storage_errors_total", "op", "background") >= 1
	})
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"pebble background work failed`) {
		t.Fatalf("no error line for the failed flush:\n%s", logs)
	}
	sgetest.Eventually(t, time.Minute, "/readyz 503 in a stall", func() bool {
		return e.Do(t, "GET", "/readyz", "").Status == 503
	})
	// A registration now waits on the stalled commit until the answer timeout.
	r := e.Post(t, "/api/register", "k-stalled", registerBody(sgetest.Wallet()))
	if r.Status != 503 || r.Header.Get("Retry-After") != "1" || !strings.Contains(string(r.Body), "no answer in time") {
		t.Fatalf("in the stall: %d, Retry-After %q, %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	fail.Store(false)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	sgetest.Eventually(t, time.Minute, "/readyz 200 after the stall", func() bool {
		return e.Do(t, "GET", "/readyz", "").Status == 200
	})
	if r := e.Post(t, "/api/register", "k3", registerBody(sgetest.Wallet())); r.Status != 201 {
		t.Fatalf("after the fault: %d %s", r.Status, r.Body)
	}
}

// The free space of the store's disks is exported by role: the data
// directory's always, the WAL directory's when it has its own.
func TestDiskFreeIsExported(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) { c.Store.WALDir = t.TempDir() })
	body := e.Do(t, "GET", "/metrics", "").Body
	for _, dir := range []string{"data", "wal"} {
		if v := metricValue(t, body, `sge_pebble_disk_free_bytes{dir="`+dir+`"}`); v <= 0 {
			t.Errorf("sge_pebble_disk_free_bytes{dir=%q} = %v", dir, v)
		}
	}
}

// counterValue reads one counter from the service's registry.
func counterValue(t *testing.T, e *sgetest.Env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
