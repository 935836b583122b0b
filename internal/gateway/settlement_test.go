package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

// backend is a real HTTP settlement backend on 127.0.0.1 whose answers a
// test scripts per call; it records every call and the peak concurrency.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	calls    []call
	byKey    map[string]int
	inflight atomic.Int64
	peak     atomic.Int64
	// answer returns the status for the n-th call (1-based) for key.
	answer atomic.Pointer[func(key string, n int) int]
	delay  time.Duration
}

type call struct {
	key, bodyID string
	at          time.Time
}

func newBackend(t *testing.T, answer func(key string, n int) int) *backend {
	b := &backend{byKey: map[string]int{}}
	b.answer.Store(&answer)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := b.inflight.Add(1)
		defer b.inflight.Add(-1)
		for {
			p := b.peak.Load()
			if cur <= p || b.peak.CompareAndSwap(p, cur) {
				break
			}
		}
		var st persistence.Settlement
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &st)
		key := r.Header.Get("Idempotency-Key")
		b.mu.Lock()
		b.calls = append(b.calls, call{key, st.ID, time.Now()})
		b.byKey[key]++
		n := b.byKey[key]
		b.mu.Unlock()
		if b.delay > 0 {
			time.Sleep(b.delay)
		}
		w.WriteHeader((*b.answer.Load())(key, n))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) callsFor(key string) []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []call
	for _, c := range b.calls {
		if c.key == key {
			out = append(out, c)
		}
	}
	return out
}

func startReal(t *testing.T, b *backend, configure func(*gateway.Config)) *sgetest.Env {
	return sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.RegisterPerHourIP = 1 << 20
		c.Settlements.Mode = actors.ModeReal
		c.Settlements.URL = b.URL
		c.Settlements.Backoff = 5 * time.Millisecond
		c.Transport.AdminToken = "s3cret"
		if configure != nil {
			configure(c)
		}
	})
}

func registerOne(t *testing.T, e *sgetest.Env) string {
	t.Helper()
	r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()))
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["settlementId"].(string)
}

func getSettlement(t *testing.T, e *sgetest.Env, id string) map[string]any {
	t.Helper()
	r := e.Do(t, http.MethodGet, "/api/settlements/"+id, "")
	if r.Status != 200 {
		t.Fatalf("GET settlement: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)
}

func waitStatus(t *testing.T, e *sgetest.Env, id, status string) map[string]any {
	t.Helper()
	var m map[string]any
	sgetest.Eventually(t, 30*time.Second, "settlement "+status, func() bool {
		m = getSettlement(t, e, id)
		return m["status"] == status
	})
	return m
}

func admin(t *testing.T, e *sgetest.Env, method, path string) *sgetest.Response {
	t.Helper()
	return e.Do(t, method, path, "", "Authorization", "Bearer s3cret")
}

// 1. Fails twice, then succeeds: 3 attempts, waits growing exponentially.
func TestSettlementRetriesWithExponentialBackoff(t *testing.T) {
	b := newBackend(t, func(_ string, n int) int {
		if n <= 2 {
			return 503
		}
		return 200
	})
	const base = 40 * time.Millisecond
	e := startReal(t, b, func(c *gateway.Config) { c.Settlements.Backoff = base })
	id := registerOne(t, e)
	m := waitStatus(t, e, id, "succeeded")
	if m["attempts"] != float64(3) || m["nextAttemptAt"] != nil || !strings.Contains(fmt.Sprint(m["lastError"]), "503") {
		t.Fatalf("settlement: %v", m)
	}
	calls := b.callsFor(id)
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3", len(calls))
	}
	// Wait n is base*2^(n-1) ±20%: only lower bounds are asserted, so a
	// slow machine cannot make this flaky.
	for i, want := range []time.Duration{base * 8 / 10, 2 * base * 8 / 10} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < want {
			t.Errorf("wait %d was %s, want at least %s", i+1, gap, want)
		}
	}
	for _, c := range calls {
		if c.bodyID != id {
			t.Errorf("body id %s under key %s", c.bodyID, c.key)
		}
	}
}

func TestBackoffSchedule(t *testing.T) {
	for n, want := range []time.Duration{2, 4, 8, 16, 32, 64, 128} {
		want *= time.Second
		lo := actors.Backoff(2*time.Second, time.Hour, n+1, 0)
		hi := actors.Backoff(2*time.Second, time.Hour, n+1, 0.999999)
		if lo != want*8/10 || hi < want*119/100 || hi > want*12/10 {
			t.Errorf("attempt %d: range [%s, %s], want %s ±20%%", n+1, lo, hi, want)
		}
	}
	if d := actors.Backoff(2*time.Second, time.Minute, 60, 0.99); d != time.Minute {
		t.Errorf("cap: %s", d)
	}
}

// 2. Always fails: dead after exactly MaxAttempts, listed by the admin API;
// replayed once the backend is fixed, it succeeds.
func TestSettlementDeadLetterAndReplay(t *testing.T) {
	var fixed atomic.Bool
	b := newBackend(t, func(string, int) int {
		if fixed.Load() {
			return 200
		}
		return 500
	})
	e := startReal(t, b, func(c *gateway.Config) { c.Settlements.MaxAttempts = 3 })
	ids := []string{registerOne(t, e), registerOne(t, e), registerOne(t, e)}
	for _, id := range ids {
		m := waitStatus(t, e, id, "dead")
		if m["attempts"] != float64(3) || len(b.callsFor(id)) != 3 {
			t.Fatalf("dead after %v attempts, %d calls", m["attempts"], len(b.callsFor(id)))
		}
	}
	// The gauge moves when the committer reports the outcome durable, just
	// after the record became readable: wait for it rather than race it.
	sgetest.Eventually(t, 30*time.Second, "sge_dead_letters 3", func() bool {
		return metricValue(t, e.Do(t, http.MethodGet, "/metrics", "").Body, "sge_dead_letters") == 3
	})

	// Paged listing: 2, then 1.
	r := admin(t, e, http.MethodGet, "/admin/dead-letters?limit=2")
	var page struct {
		Items []map[string]any
		Next  *string
	}
	if err := json.Unmarshal(r.Body, &page); r.Status != 200 || err != nil || len(page.Items) != 2 || page.Next == nil {
		t.Fatalf("page 1: %d %s", r.Status, r.Body)
	}
	r = admin(t, e, http.MethodGet, "/admin/dead-letters?limit=2&after="+*page.Next)
	page.Next = nil
	if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Items) != 1 || page.Next != nil {
		t.Fatalf("page 2: %d %s", r.Status, r.Body)
	}

	fixed.Store(true)
	if r := admin(t, e, http.MethodPost, "/admin/dead-letters/"+ids[0]+"/replay"); r.Status != 202 || r.JSON(t)["attempts"] != float64(0) {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	if m := waitStatus(t, e, ids[0], "succeeded"); m["attempts"] != float64(1) {
		t.Fatalf("after replay: %v", m)
	}
	if r := admin(t, e, http.MethodPost, "/admin/dead-letters/"+ids[0]+"/replay"); r.Status != 404 {
		t.Fatalf("replay of a settled one: %d %s", r.Status, r.Body)
	}
	if r := admin(t, e, http.MethodDelete, "/admin/dead-letters/"+ids[1]); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := admin(t, e, http.MethodPost, "/admin/dead-letters/replay"); r.Status != 202 || r.JSON(t)["replayed"] != float64(1) {
		t.Fatalf("replay all: %d %s", r.Status, r.Body)
	}
	waitStatus(t, e, ids[2], "succeeded")
	if m := getSettlement(t, e, ids[1]); m["status"] != "dead" {
		t.Fatalf("deleted dead letter keeps its record: %v", m)
	}
	if r := admin(t, e, http.MethodGet, "/admin/dead-letters"); !strings.Contains(string(r.Body), `"items":[]`) {
		t.Fatalf("dead letters left: %s", r.Body)
	}
	if n := e.Gateway.Settlements.DeadLetterCount(); n != 0 {
		t.Fatalf("dead-letter gauge %d", n)
	}
}

// 2b. A 4xx answer is permanent: dead after one attempt. 408 and 429 are not.
func TestSettlementPermanentFailure(t *testing.T) {
	b := newBackend(t, func(string, int) int { return 400 })
	e := startReal(t, b, nil)
	id := registerOne(t, e)
	if m := waitStatus(t, e, id, "dead"); m["attempts"] != float64(1) || !strings.Contains(fmt.Sprint(m["lastError"]), "400") {
		t.Fatalf("settlement: %v", m)
	}

	b2 := newBackend(t, func(_ string, n int) int {
		if n == 1 {
			return 429
		}
		if n == 2 {
			return 408
		}
		return 201
	})
	e2 := startReal(t, b2, nil)
	id = registerOne(t, e2)
	if m := waitStatus(t, e2, id, "succeeded"); m["attempts"] != float64(3) {
		t.Fatalf("settlement: %v", m)
	}
}

// 3. The mock backend panics: each panic is a failed attempt, the actor is
// restarted by its supervisor, and every settlement still succeeds.
func TestSettlementPanicRestartsActor(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.RegisterPerHourIP = 1 << 20
		c.Settlements.MockLatency = time.Millisecond
		c.Settlements.MockPanicRate = 0.5
		c.Settlements.MockSeed = 7
		c.Settlements.MaxAttempts = 40
		c.Settlements.Backoff = time.Millisecond
		c.Settlements.MaxBackoff = 5 * time.Millisecond
	})
	var ids []string
	for range 10 {
		ids = append(ids, registerOne(t, e))
	}
	for _, id := range ids {
		waitStatus(t, e, id, "succeeded")
	}
	body := e.Do(t, http.MethodGet, "/metrics", "").Body
	restarts := metricValue(t, body, `sge_actor_restarts_total{kind="settlement"}`)
	panicked := metricValue(t, body, `sge_settlement_attempts_total{kind="registration",outcome="panicked"}`)
	if restarts == 0 || panicked == 0 || restarts != panicked {
		t.Fatalf("restarts %v, panicked attempts %v", restarts, panicked)
	}
	sgetest.Eventually(t, 10*time.Second, "settlement actors gone", func() bool { return e.Gateway.Settlements.Live() == 0 })
}

func metricValue(t *testing.T, body []byte, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// 5. 1,000 settlements pending at start-up: the sweeper starts them, never
// more than SETTLEMENT_CONCURRENCY calls run at once, and all succeed.
func TestSettlementConcurrencyCap(t *testing.T) {
	const n, limit = 1000, 8
	dir := t.TempDir()
	store, err := persistence.Open(persistence.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	batch := store.DB().NewBatch()
	var want []string
	for i := range n {
		st := &persistence.Settlement{ID: ids.New(now), Kind: persistence.KindRegistration, Wallet: sgetest.Wallet(),
			Status: persistence.StatusPending, CreatedAt: now.Add(time.Duration(i)).UTC(), UpdatedAt: now.UTC()}
		if err := actors.PutSettlement(batch, st, st.CreatedAt); err != nil {
			t.Fatal(err)
		}
		want = append(want, st.ID)
	}
	if err := store.Commit(batch); err != nil {
		t.Fatal(err)
	}
	store.Close()

	b := newBackend(t, func(string, int) int { return 200 })
	b.delay = 2 * time.Millisecond
	e := startReal(t, b, func(c *gateway.Config) {
		c.Store.Dir = dir
		c.Settlements.Concurrency = limit
		c.Settlements.MaxLive = 100 // the rest wait in g/due
	})
	sgetest.Eventually(t, 60*time.Second, "all settled", func() bool {
		return e.Gateway.Settlements.Counts()["pending"] == 0 && e.Gateway.Settlements.Counts()["running"] == 0
	})
	if p := b.peak.Load(); p > limit || p < 2 {
		t.Fatalf("peak concurrency %d, cap %d", p, limit)
	}
	for _, id := range want {
		if st, err := e.System.Settlement(id); err != nil || st.Status != "succeeded" || st.Attempts != 1 {
			t.Fatalf("%s: %+v %v", id, st, err)
		}
		if c := b.callsFor(id); len(c) != 1 {
			t.Fatalf("%s called %d times", id, len(c))
		}
	}
	t.Logf("peak concurrency %d of %d", b.peak.Load(), limit)
}

// A graceful restart mid-retry resumes at the same attempt.
func TestSettlementResumesAfterRestart(t *testing.T) {
	var fixed atomic.Bool
	b := newBackend(t, func(string, int) int {
		if fixed.Load() {
			return 200
		}
		return 500
	})
	e := startReal(t, b, func(c *gateway.Config) {
		c.Settlements.Backoff = 50 * time.Millisecond
		c.Settlements.MaxAttempts = 20
	})
	id := registerOne(t, e)
	sgetest.Eventually(t, 10*time.Second, "two failed attempts", func() bool { return len(b.callsFor(id)) >= 2 })
	e2 := e.Restart(t)
	before := len(b.callsFor(id))
	fixed.Store(true)
	m := waitStatus(t, e2, id, "succeeded")
	if got := int(m["attempts"].(float64)); got != len(b.callsFor(id)) || got <= before {
		t.Fatalf("attempts %d after %d calls before the restart, %d in all", got, before, len(b.callsFor(id)))
	}
}

// 6. Admin auth: 401 without or with a malformed header, 403 with a wrong
// token, 404 everywhere when no token is configured.
func TestAdminAuth(t *testing.T) {
	b := newBackend(t, func(string, int) int { return 200 })
	e := startReal(t, b, nil)
	for _, c := range []struct {
		header string
		want   int
	}{
		{"", 401}, {"Basic czNjcmV0", 401}, {"Bearer", 401}, {"Bearer wrong", 403}, {"Bearer s3cret", 200}, {"bearer s3cret", 200},
	} {
		var h []string
		if c.header != "" {
			h = []string{"Authorization", c.header}
		}
		r := e.Do(t, http.MethodGet, "/admin/dead-letters", "", h...)
		if r.Status != c.want {
			t.Errorf("%q: %d, want %d (%s)", c.header, r.Status, c.want, r.Body)
		}
		if c.want >= 400 && r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%q: content type %q", c.header, r.Header.Get("Content-Type"))
		}
	}
	if r := admin(t, e, http.MethodGet, "/admin/dead-letters?limit=0"); r.Status != 400 {
		t.Errorf("limit=0: %d", r.Status)
	}
	if r := admin(t, e, http.MethodPost, "/admin/dead-letters/"+ids.New(time.Now())+"/replay"); r.Status != 404 {
		t.Errorf("replay unknown: %d", r.Status)
	}

	off := sgetest.Start(t, nil)
	for _, path := range []string{"/admin/dead-letters", "/admin/dead-letters/x/replay"} {
		if r := off.Do(t, http.MethodGet, path, "", "Authorization", "Bearer s3cret"); r.Status != 404 {
			t.Errorf("%s without ADMIN_TOKEN: %d", path, r.Status)
		}
	}
}

// Shutdown with a call stuck in the backend: bounded by the shutdown
// context, the call is cancelled, and no attempt goroutine is left.
func TestSettlementShutdownCancelsCalls(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stuck.Close()
	defer close(release)
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Settlements.Mode = actors.ModeReal
		c.Settlements.URL = stuck.URL
	})
	id := registerOne(t, e)
	waitStatus(t, e, id, "running")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "runAttempt") {
		t.Fatalf("attempt goroutine left:\n%s", stacks)
	}
	if n := e.Gateway.Settlements.Live(); n != 0 {
		t.Fatalf("%d settlement actors live after shutdown", n)
	}
}

// A Serve that comes after Shutdown (a signal right after start, before the
// serving goroutine got going) serves nothing: no sweeper on the closed
// store, no listener left open, and it returns.
func TestServeAfterShutdownServesNothing(t *testing.T) {
	var cfg gateway.Config
	cfg.Store.Dir = t.TempDir()
	cfg.Transport.Addr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve after Shutdown is still serving after a minute")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts connections after Shutdown")
	}
}
