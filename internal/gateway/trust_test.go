package gateway_test

import (
	"strings"
	"testing"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/sgetest"
)

// registerFrom registers a fresh wallet with the given X-Forwarded-For and
// returns the status; no answer may be a 5xx.
func registerFrom(t *testing.T, e *sgetest.Env, xff string) int {
	t.Helper()
	r := e.Post(t, "/api/register", "", registerBody(sgetest.Wallet()), "X-Forwarded-For", xff)
	if r.Status >= 500 {
		t.Fatalf("X-Forwarded-For %.60q: %d %s", xff, r.Status, r.Body)
	}
	return r.Status
}

var xffGarbage = []string{
	"garbage", "1.2.3.4, nonsense", "::::", ",,,", "999.1.1.1", "203.0.113.7%eth0",
	"[fe80::1%eth0]:80", "1.2.3.4:99999", "\xff\xfe", "\t \t", strings.Repeat("9,", 2000), "unknown",
}

// Without TRUSTED_PROXIES, X-Forwarded-For is ignored: whatever a client
// writes there, it spends from its own socket address's bucket.
func TestForwardedForIgnoredWithoutTrustedProxies(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) { c.Actors.RegisterPerHourIP = 2 })
	for i, xff := range append([]string{"203.0.113.1", "203.0.113.2"}, xffGarbage...) {
		want := 201
		if i >= 2 {
			want = 429
		}
		if got := registerFrom(t, e, xff); got != want {
			t.Fatalf("request %d (X-Forwarded-For %.40q): %d, want %d", i, xff, got, want)
		}
	}
}

// Behind a trusted proxy the rightmost untrusted hop is the client; entries
// left of it (which the client wrote) choose nothing, and garbage falls back
// to the proxy that handed it over.
func TestForwardedForFromTrustedProxy(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.RegisterPerHourIP = 2
		var err error
		if c.Transport.TrustedProxies, err = input.ParsePrefixes("127.0.0.0/8"); err != nil {
			t.Fatal(err)
		}
	})
	steps := []struct {
		xff  string
		want int
	}{
		{"203.0.113.7", 201},
		{"203.0.113.7, 127.0.0.5", 201}, // a trusted hop is skipped
		{"203.0.113.7", 429},            // the client's bucket is spent
		{"198.51.100.1, 203.0.113.7", 429},
		{"203.0.113.7, 203.0.113.9", 201}, // a fresh client behind the proxy
		{"[2001:db8::1]:443", 201},
		{"2001:db8::2", 201}, // same /64 as 2001:db8::1
		{"2001:db8::3", 429},
	}
	for i, s := range steps {
		if got := registerFrom(t, e, s.xff); got != s.want {
			t.Fatalf("step %d (X-Forwarded-For %q): %d, want %d", i, s.xff, got, s.want)
		}
	}
	// Garbage lands in the proxy's own bucket (127.0.0.1): two get through,
	// the rest are limited, none picks a bucket of its own.
	for i, xff := range xffGarbage {
		want := 201
		if i >= 2 {
			want = 429
		}
		if got := registerFrom(t, e, xff); got != want {
			t.Fatalf("garbage %d (%.40q): %d, want %d", i, xff, got, want)
		}
	}
}
