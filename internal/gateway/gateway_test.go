package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/sgetest"
)

func registerBody(w string) string { return `{"wallet":"` + w + `"}` }

// 1. Same key twice: MISS then HIT, byte-identical, one settlement.
func TestReplayIsByteIdentical(t *testing.T) {
	e := sgetest.Start(t, nil)
	w := sgetest.Wallet()
	first := e.Post(t, "/api/register", "key-1", registerBody(w))
	second := e.Post(t, "/api/register", "key-1", registerBody(w))
	if first.Status != 201 || first.Header.Get("X-Idempotency") != "MISS" {
		t.Fatalf("first: %d %q %s", first.Status, first.Header.Get("X-Idempotency"), first.Body)
	}
	if second.Status != 201 || second.Header.Get("X-Idempotency") != "HIT" || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second: %d %v", second.Status, second.Header)
	}
	if !bytes.Equal(first.Body, second.Body) {
		t.Fatalf("bodies differ:\n%s\n%s", first.Body, second.Body)
	}
	sts := e.Settlements(t, w)
	if len(sts) != 1 || sts[0].ID != first.JSON(t)["settlementId"] || sts[0].Kind != "registration" || sts[0].Status == "dead" {
		t.Fatalf("settlements: %+v", sts)
	}
	got := e.Do(t, http.MethodGet, "/api/settlements/"+sts[0].ID, "")
	if got.Status != 200 || got.JSON(t)["kind"] != "registration" || got.JSON(t)["wallet"] != w {
		t.Fatalf("GET settlement: %d %s", got.Status, got.Body)
	}
}

// 2. The same key for two wallets is two operations; same key and wallet
// with another body is 422.
func TestKeyScopeAndMismatch(t *testing.T) {
	e := sgetest.Start(t, nil)
	a, b := sgetest.Wallet(), sgetest.Wallet()
	ra := e.Post(t, "/api/register", "shared", registerBody(a))
	rb := e.Post(t, "/api/register", "shared", registerBody(b))
	if ra.Status != 201 || rb.Status != 201 || rb.Header.Get("X-Idempotency") != "MISS" {
		t.Fatalf("statuses %d %d", ra.Status, rb.Status)
	}
	if len(e.Settlements(t, a)) != 1 || len(e.Settlements(t, b)) != 1 {
		t.Fatal("want one settlement per wallet")
	}
	e.Post(t, "/api/claim/prepare", "k2", `{"wallet":"`+a+`","amount":"5"}`)
	mm := e.Post(t, "/api/claim/prepare", "k2", `{"wallet":"`+a+`","amount":"6"}`)
	if mm.Status != 422 || mm.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("mismatch: %d %s", mm.Status, mm.Body)
	}
}

// 3. 200 concurrent requests with one key and wallet: one effect, one answer.
func TestConcurrentDuplicates(t *testing.T) {
	e := sgetest.Start(t, nil)
	w := sgetest.Wallet()
	const n = 200
	bodies := make([][]byte, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := e.Post(t, "/api/register", "same", registerBody(w))
			bodies[i], statuses[i] = r.Body, r.Status
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if statuses[i] != 201 || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("answer %d: %d %s, want 201 %s", i, statuses[i], bodies[i], bodies[0])
		}
	}
	if sts := e.Settlements(t, w); len(sts) != 1 {
		t.Fatalf("%d settlements, want 1", len(sts))
	}
}

// 4. Rate limits: 429 with its headers, per IP and per wallet, and never for
// a replay.
func TestRateLimits(t *testing.T) {
	proxies, err := input.ParsePrefixes("127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.TrustedProxies = proxies })

	t.Run("register-ip", func(t *testing.T) {
		xff := []string{"X-Forwarded-For", "203.0.113.7"}
		var lastKey, lastWallet string
		for i := range 5 {
			lastKey, lastWallet = "ip-"+strconv.Itoa(i), sgetest.Wallet()
			if r := e.Post(t, "/api/register", lastKey, registerBody(lastWallet), xff...); r.Status != 201 {
				t.Fatalf("register %d: %d %s", i+1, r.Status, r.Body)
			}
		}
		r := e.Post(t, "/api/register", "ip-5", registerBody(sgetest.Wallet()), xff...)
		if r.Status != 429 {
			t.Fatalf("6th register: %d %s", r.Status, r.Body)
		}
		if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 720 {
			t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		if got := r.Header.Get("RateLimit-Policy"); got != `"register-ip";q=5;w=3600, "register-wallet";q=10;w=86400` {
			t.Errorf("RateLimit-Policy %q", got)
		}
		if got := r.Header.Get("RateLimit"); got != `"register-ip";r=0;t=3600` {
			t.Errorf("RateLimit %q", got)
		}
		if !bytes.Contains(r.Body, []byte("register-ip")) {
			t.Errorf("problem does not name the policy: %s", r.Body)
		}
		// A replay of finished work is answered, not limited.
		if r := e.Post(t, "/api/register", lastKey, registerBody(lastWallet), xff...); r.Status != 201 || r.Header.Get("X-Idempotency") != "HIT" {
			t.Fatalf("replay after limit: %d %s", r.Status, r.Body)
		}
		// The 429 was not stored: the same key is still limited, not replayed.
		if r := e.Post(t, "/api/register", "ip-5", registerBody(sgetest.Wallet()), xff...); r.Status != 429 {
			t.Fatalf("retry of limited request: %d", r.Status)
		}
	})

	t.Run("register-wallet", func(t *testing.T) {
		w := sgetest.Wallet()
		for i := range 10 {
			xff := fmt.Sprintf("198.51.100.%d", i)
			if r := e.Post(t, "/api/register", "", registerBody(w), "X-Forwarded-For", xff); r.Status != 201 {
				t.Fatalf("register %d: %d %s", i+1, r.Status, r.Body)
			}
		}
		r := e.Post(t, "/api/register", "", registerBody(w), "X-Forwarded-For", "198.51.100.200")
		if r.Status != 429 || !bytes.Contains(r.Body, []byte("register-wallet")) {
			t.Fatalf("11th register: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit") != `"register-wallet";r=0;t=86400` {
			t.Errorf("headers %v", r.Header)
		}
		// The refused request spent no IP token.
		if r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()), "X-Forwarded-For", "198.51.100.200"); r.Header.Get("RateLimit") == "" || !bytes.Contains([]byte(r.Header.Get("RateLimit")), []byte(`"register-ip";r=4`)) {
			t.Errorf("IP token spent by a refused request: %q", r.Header.Get("RateLimit"))
		}
	})

	t.Run("claim-wallet", func(t *testing.T) {
		w := sgetest.Wallet()
		for i := range 60 {
			if r := e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"1"}`); r.Status != 201 {
				t.Fatalf("prepare %d: %d", i+1, r.Status)
			}
		}
		r := e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"1"}`)
		if r.Status != 429 || !bytes.Contains(r.Body, []byte("claim-wallet")) {
			t.Fatalf("61st prepare: %d %s", r.Status, r.Body)
		}
	})
}

// 5. X-Forwarded-For is ignored unless the peer is a trusted proxy.
func TestForwardedForNeedsTrustedPeer(t *testing.T) {
	e := sgetest.Start(t, nil) // no trusted proxies
	for i := range 5 {
		// A client rotating X-Forwarded-For still spends its own bucket.
		xff := fmt.Sprintf("192.0.2.%d", i)
		if r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()), "X-Forwarded-For", xff); r.Status != 201 {
			t.Fatalf("register %d: %d", i+1, r.Status)
		}
	}
	if r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()), "X-Forwarded-For", "192.0.2.99"); r.Status != 429 {
		t.Fatalf("spoofed X-Forwarded-For got %d, want 429", r.Status)
	}
}

// 6. A graceful restart keeps idempotency records and buckets.
func TestGracefulRestartKeepsState(t *testing.T) {
	e := sgetest.Start(t, nil)
	w := sgetest.Wallet()
	first := e.Post(t, "/api/register", "restart", registerBody(w))
	for range 4 {
		e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()))
	}
	e = e.Restart(t)
	again := e.Post(t, "/api/register", "restart", registerBody(w))
	if again.Header.Get("X-Idempotency") != "HIT" || !bytes.Equal(first.Body, again.Body) {
		t.Fatalf("after restart: %d %q %s", again.Status, again.Header.Get("X-Idempotency"), again.Body)
	}
	// The IP bucket survived: five registrations were spent before.
	if r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet())); r.Status != 429 {
		t.Fatalf("IP bucket reset by restart: %d %s", r.Status, r.Body)
	}
}

// 8. An idle wallet actor is passivated, and a later request sees its state.
func TestPassivationKeepsState(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.IdleTimeout = 20 * time.Millisecond
		c.Actors.ClaimPerHour = 3
	})
	w := sgetest.Wallet()
	first := e.Post(t, "/api/claim/prepare", "p1", `{"wallet":"`+w+`","amount":"7"}`)
	e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"7"}`)
	sgetest.Eventually(t, 10*time.Second, "wallet actor passivated", func() bool { return e.System.LiveWallets() == 0 })
	again := e.Post(t, "/api/claim/prepare", "p1", `{"wallet":"`+w+`","amount":"7"}`)
	if again.Header.Get("X-Idempotency") != "HIT" || !bytes.Equal(first.Body, again.Body) {
		t.Fatalf("replay after passivation: %d %s", again.Status, again.Body)
	}
	sgetest.Eventually(t, 10*time.Second, "wallet actor passivated", func() bool { return e.System.LiveWallets() == 0 })
	// Two of three tokens were spent before passivation: one left.
	if r := e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"7"}`); r.Status != 201 || r.Header.Get("RateLimit") != `"claim-wallet";r=0;t=3600` {
		t.Fatalf("third prepare: %d %q", r.Status, r.Header.Get("RateLimit"))
	}
	if r := e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"7"}`); r.Status != 429 {
		t.Fatalf("fourth prepare: %d, want 429", r.Status)
	}
}
