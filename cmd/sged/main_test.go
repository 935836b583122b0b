package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

// The test binary doubles as sged: with SGED_CHILD=1 it runs main, so crash
// tests start the real server as a child process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("SGED_CHILD") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// child is a running sged process.
type child struct {
	cmd       *exec.Cmd
	addr      string
	pprofAddr string // from the listening line, when PPROF_ADDR is set
	stderr    *bytes.Buffer
	exited    chan error
}

// startChild runs sged with args and env and waits for its listening line.
func startChild(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "SGED_CHILD=1"), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: new(bytes.Buffer), exited: make(chan error, 1)}
	type listening struct{ Msg, Addr, PprofAddr string }
	addrc := make(chan listening, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			c.stderr.Write(append(sc.Bytes(), '\n'))
			mu.Unlock()
			var line listening
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addrc <- line
			}
		}
	}()
	go func() { err := cmd.Wait(); pw.Close(); c.exited <- err }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case l := <-addrc:
		c.addr, c.pprofAddr = l.Addr, l.PprofAddr
	case err := <-c.exited:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("sged exited before listening: %v\n%s", err, c.stderr)
	case <-time.After(60 * time.Second):
		t.Fatal("sged did not start listening within 60s")
	}
	return c
}

func (c *child) url() string { return "http://" + c.addr }

// terminate sends SIGTERM and returns the exit code.
func (c *child) terminate(t *testing.T) int {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("sged did not stop within 60s of SIGTERM")
	}
	return c.cmd.ProcessState.ExitCode()
}

type outcome struct {
	wallet     string
	status     int
	settlement string
}

func register(ctx context.Context, client *http.Client, url, key, wallet string) (int, string, http.Header, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/register", strings.NewReader(`{"wallet":"`+wallet+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	var body struct{ SettlementID string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.SettlementID, resp.Header, nil
}

// 7. kill -9 under concurrent load with keys; after restart every key that
// was answered 201 replays the same settlement, and no key has two. With
// WAL_DIR, the commits acknowledged before the kill are replayed from there.
func TestCrashUnderLoadKeepsIdempotency(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sged as a child process")
	}
	t.Run("WAL in DATA_DIR", func(t *testing.T) { crashUnderLoad(t, persistence.Config{Dir: t.TempDir()}) })
	t.Run("WAL_DIR apart", func(t *testing.T) {
		crashUnderLoad(t, persistence.Config{Dir: t.TempDir(), WALDir: t.TempDir()})
	})
}

func crashUnderLoad(t *testing.T, storeCfg persistence.Config) {
	env := []string{"DATA_DIR=" + storeCfg.Dir, "WAL_DIR=" + storeCfg.WALDir, "ADDR=127.0.0.1:0", "RL_REGISTER_PER_HOUR=1000000"}
	c := startChild(t, env)
	client := &http.Client{Timeout: 10 * time.Second}

	const workers = 16
	var (
		mu       sync.Mutex
		sent     = map[string]*outcome{} // by key
		answered atomic.Int64
		wg       sync.WaitGroup
	)
	ctx, stop := context.WithCancel(context.Background())
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 5000; i++ {
				key := fmt.Sprintf("crash-%d-%d", w, i)
				o := &outcome{wallet: sgetest.Wallet()}
				mu.Lock()
				sent[key] = o
				mu.Unlock()
				status, id, _, err := register(ctx, client, c.url(), key, o.wallet)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				o.status, o.settlement = status, id
				mu.Unlock()
				if status == 201 {
					answered.Add(1)
				}
			}
		}()
	}
	// Kill once a few hundred requests were answered, with more in flight.
	sgetest.Eventually(t, 60*time.Second, "answers before the crash", func() bool { return answered.Load() >= 300 })
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	stop()
	wg.Wait()

	c = startChild(t, env)
	for key, o := range sent {
		status, id, h, err := register(context.Background(), client, c.url(), key, o.wallet)
		if err != nil || status != 201 {
			t.Fatalf("retry %s: %d %v", key, status, err)
		}
		if o.status == 201 {
			if h.Get("X-Idempotency") != "HIT" || id != o.settlement {
				t.Fatalf("key %s answered %s before the crash, %s (%s) after", key, o.settlement, id, h.Get("X-Idempotency"))
			}
		}
	}
	if code := c.terminate(t); code != 0 {
		t.Fatalf("graceful stop exited %d\n%s", code, c.stderr)
	}

	if storeCfg.WALDir != "" {
		inData, _ := filepath.Glob(filepath.Join(storeCfg.Dir, "*.log"))
		inWAL, _ := filepath.Glob(filepath.Join(storeCfg.WALDir, "*.log"))
		if len(inData) != 0 || len(inWAL) == 0 {
			t.Fatalf("WAL files: %d in DATA_DIR, %d in WAL_DIR", len(inData), len(inWAL))
		}
	}
	store, err := persistence.Open(storeCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for key, o := range sent {
		if n := len(sgetest.Settlements(t, store, o.wallet)); n != 1 {
			t.Fatalf("key %s has %d settlements", key, n)
		}
	}
	t.Logf("%d keys sent, %d answered 201 before kill -9", len(sent), answered.Load())
}

func TestGracefulShutdownExitsZero(t *testing.T) {
	c := startChild(t, []string{"DATA_DIR=" + t.TempDir(), "ADDR=127.0.0.1:0"})
	resp, err := http.Get(c.url() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if code := c.terminate(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.stderr)
	}
}

// PPROF_ADDR serves Go's profiles on a listener of its own, whose address
// the listening line gives (the port chosen, for ":0"); the API's does not.
func TestPprofAddrServesProfiles(t *testing.T) {
	c := startChild(t, []string{"DATA_DIR=" + t.TempDir(), "ADDR=127.0.0.1:0", "PPROF_ADDR=127.0.0.1:0"})
	if c.pprofAddr == "" || strings.HasSuffix(c.pprofAddr, ":0") {
		t.Fatalf("listening line gives pprofAddr %q\n%s", c.pprofAddr, c.stderr)
	}
	for _, u := range []string{"http://" + c.pprofAddr + "/debug/pprof/goroutine?debug=1", c.url() + "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		profiled := resp.StatusCode == 200 && strings.Contains(string(body), "goroutine profile:")
		if want := strings.Contains(u, c.pprofAddr); profiled != want {
			t.Errorf("%s: status %d, profile served %v, want %v", u, resp.StatusCode, profiled, want)
		}
	}
	if code := c.terminate(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.stderr)
	}
}

func TestInvalidConfigReportsEveryProblem(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"RL_CLAIM_PER_HOUR": "many", "IDEMPOTENCY_TTL": "1 day", "TRUSTED_PROXIES": "10.0.0.0/99", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "WAL_MIN_SYNC_INTERVAL": "-1ms", "MOCK_SETTLEMENT_FAILURE_RATE": "NaN"}
	code := run(context.Background(), []string{"--claim-ttl=-1s"}, func(k string) string { return env[k] }, &stderr)
	if code != exitConfig {
		t.Fatalf("exit code %d, want %d", code, exitConfig)
	}
	for _, want := range []string{"RL_CLAIM_PER_HOUR", "IDEMPOTENCY_TTL", "TRUSTED_PROXIES", "CLAIM_TTL", "OTLP endpoint", "WAL_MIN_SYNC_INTERVAL", "MOCK_SETTLEMENT_FAILURE_RATE"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not mention %s:\n%s", want, stderr.String())
		}
	}
}

// The subsystems read a zero setting as "the default". A 0 given on purpose
// must therefore either mean what the table says (none: a negative for the
// subsystem) or be refused, never quietly become the default.
func TestZeroSettings(t *testing.T) {
	parse := func(env, v string) (*config, error) {
		return parseConfig(nil, func(k string) string {
			if k == env {
				return v
			}
			return ""
		}, io.Discard)
	}
	for _, c := range []struct {
		env, v string
		got    func(*config) int64
		want   int64
	}{
		{"WAL_MIN_SYNC_INTERVAL", "", func(c *config) int64 { return int64(c.Store.WALMinSyncInterval) }, int64(persistence.DefaultWALMinSyncInterval)},
		{"WAL_MIN_SYNC_INTERVAL", "0", func(c *config) int64 { return int64(c.Store.WALMinSyncInterval) }, -1},
		{"WAL_MIN_SYNC_INTERVAL", "250us", func(c *config) int64 { return int64(c.Store.WALMinSyncInterval) }, int64(250 * time.Microsecond)},
		{"MOCK_SETTLEMENT_LATENCY", "0s", func(c *config) int64 { return int64(c.Settlements.MockLatency) }, -1},
		{"REPLAY_CACHE_RECORDS", "0", func(c *config) int64 { return int64(c.Actors.ReplayCacheRecords) }, -1},
	} {
		cfg, err := parse(c.env, c.v)
		if err != nil {
			t.Fatalf("%s=%q: %v", c.env, c.v, err)
		}
		if got := c.got(cfg); got != c.want {
			t.Errorf("%s=%q: %d, want %d", c.env, c.v, got, c.want)
		}
	}
	// No latency means no wait: with its context already done, a waiting
	// mock would answer the context's error.
	cfg, _ := parse("MOCK_SETTLEMENT_LATENCY", "0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := actors.NewBackend(cfg.Settlements).Settle(ctx, &persistence.Settlement{ID: "s"}); err != nil {
		t.Errorf("mock with MOCK_SETTLEMENT_LATENCY=0 waited: %v", err)
	}
	for _, env := range []string{"SETTLEMENT_CONCURRENCY", "SETTLEMENT_MAX_ATTEMPTS", "RL_CLAIM_PER_HOUR", "MAX_BODY_BYTES", "IDEMPOTENCY_TTL", "SWEEP_INTERVAL", "SHUTDOWN_TIMEOUT"} {
		v := "0"
		if strings.HasSuffix(env, "TTL") || strings.HasSuffix(env, "INTERVAL") || strings.HasSuffix(env, "TIMEOUT") {
			v = "0s"
		}
		if _, err := parse(env, v); err == nil || !strings.Contains(err.Error(), env+": must not be 0") {
			t.Errorf("%s=%s: %v, want it refused", env, v, err)
		}
	}
}

// A store written with its WAL apart does not start without it: it would
// start without the commits only its WAL holds.
func TestStoreWithoutItsWALDirFailsStart(t *testing.T) {
	cfg := persistence.Config{Dir: t.TempDir(), WALDir: t.TempDir()}
	store, err := persistence.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	// Cancelled: were the store to open, sged would stop at once instead of
	// serving until the test times out.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	code := run(ctx, []string{"--data-dir", cfg.Dir, "--addr", "127.0.0.1:0"}, func(string) string { return "" }, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), persistence.WALMarker) || !strings.Contains(stderr.String(), cfg.WALDir) {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

func TestUnreadableDataDirFailsStart(t *testing.T) {
	dir := t.TempDir()
	// A file where the data directory should be.
	path := dir + "/data"
	if err := os.WriteFile(path, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--data-dir", path, "--addr", "127.0.0.1:0"}, func(string) string { return "" }, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "cannot start") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}
