package gateway_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/sgetest"
)

// A flood of distinct wallets and client IPs leaves no lasting memory: wallet
// actors passivate after ACTOR_IDLE_TIMEOUT and the IP limiter never holds
// more than its bound.
func TestFloodOfDistinctSubjectsStaysBounded(t *testing.T) {
	const (
		subjects   = 5000
		maxEntries = 640 // 64 shards x 10
		workers    = 16
	)
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.IdleTimeout = 100 * time.Millisecond
		c.Actors.IPLimiterMaxEntries = maxEntries
		var err error
		if c.Transport.TrustedProxies, err = input.ParsePrefixes("127.0.0.0/8"); err != nil {
			t.Fatal(err)
		}
	})
	var (
		next, created atomic.Int64
		peakIPs       atomic.Int64
		wg            sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= subjects; i = next.Add(1) {
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()), "X-Forwarded-For", ip)
				if r.Status != 201 {
					t.Errorf("register from %s: %d %s", ip, r.Status, r.Body)
					return
				}
				created.Add(1)
				if n := int64(e.System.IPLimiterEntries()); n > peakIPs.Load() {
					peakIPs.Store(n)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if p := peakIPs.Load(); p > maxEntries || e.System.IPLimiterEntries() > maxEntries {
		t.Fatalf("IP limiter held %d entries (now %d), bound %d", p, e.System.IPLimiterEntries(), maxEntries)
	}
	sgetest.Eventually(t, 30*time.Second, "every wallet actor passivated", func() bool { return e.System.LiveWallets() == 0 })
	t.Logf("%d registrations from distinct wallets and IPs; IP limiter peak %d entries", created.Load(), peakIPs.Load())
}

// Beyond MAX_LIVE_WALLETS a request for another wallet gets 503 (retryable)
// while the live ones keep being served.
func TestLiveWalletCap(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.MaxLiveWallets = 3
		c.Actors.IdleTimeout = time.Hour
		c.Actors.PressureIdleTimeout = time.Hour
	})
	var live []string
	for range 3 {
		w := sgetest.Wallet()
		live = append(live, w)
		if r := e.Post(t, "/api/register", "", registerBody(w)); r.Status != 201 {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
	}
	r := e.Post(t, "/api/register", "k", registerBody(sgetest.Wallet()))
	if r.Status != 503 || r.Header.Get("Content-Type") != "application/problem+json" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %d %q %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if r := e.Post(t, "/api/register", "", registerBody(live[0])); r.Status != 201 {
		t.Fatalf("a live wallet over the cap: %d %s", r.Status, r.Body)
	}
	if n := e.System.LiveWallets(); n != 3 {
		t.Fatalf("%d live wallets, cap 3", n)
	}
}
