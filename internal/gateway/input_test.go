package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

// Bad input gets a clear 4xx problem and stores nothing.
func TestBadInput(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.MaxBodyBytes = 1024 })
	w := sgetest.Wallet()
	cases := []struct {
		name, method, path, ctype, key, body string
		status                               int
	}{
		{"malformed json", "POST", "/api/register", "application/json", "", `{"wallet":`, 400},
		{"wrong type", "POST", "/api/register", "application/json", "", `{"wallet":42}`, 400},
		{"duplicate key", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","wallet":"` + w + `"}`, 400},
		{"unknown field", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","x":"y"}`, 400},
		{"missing wallet", "POST", "/api/register", "application/json", "", `{}`, 400},
		{"bad checksum", "POST", "/api/register", "application/json", "", `{"wallet":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"}`, 400},
		{"non-hex wallet", "POST", "/api/register", "application/json", "", `{"wallet":"0xzz` + w[4:] + `"}`, 400},
		{"decimal amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"1.5"}`, 400},
		{"zero amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"0"}`, 400},
		{"negative amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"-1"}`, 400},
		{"bad txHash", "POST", "/api/claim/record", "application/json", "", `{"wallet":"` + w + `","claimId":"01ARZ3NDEKTSV4RRFFQ69G5FAV","txHash":"0x12"}`, 400},
		{"bad claimId", "POST", "/api/claim/record", "application/json", "", `{"wallet":"` + w + `","claimId":"nope","txHash":"` + sgetest.TxHash() + `"}`, 400},
		{"long key", "POST", "/api/register", "application/json", strings.Repeat("k", 256), `{"wallet":"` + w + `"}`, 400},
		{"wrong content type", "POST", "/api/register", "text/plain", "", `{"wallet":"` + w + `"}`, 415},
		{"body too large", "POST", "/api/register", "application/json", "", `{"wallet":"` + strings.Repeat("a", 2048) + `"}`, 413},
		{"unknown route", "GET", "/api/nope", "", "", "", 404},
		{"wrong method", "GET", "/api/register", "", "", "", 405},
		{"bad settlement id", "GET", "/api/settlements/xyz", "", "", "", 400},
		{"unknown settlement", "GET", "/api/settlements/01ARZ3NDEKTSV4RRFFQ69G5FAV", "", "", "", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.URL+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.key != "" {
				req.Header.Set("Idempotency-Key", tc.key)
			}
			resp, err := e.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %q, want %d problem", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
			}
		})
	}
	n := 0
	_ = e.Store.Scan([]byte("w/"), func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("bad input stored %d wallet records", n)
	}
}

func TestIdempotencyRequired(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Transport.IdempotencyRequired = true
		c.Actors.IdempotencyRequired = true
	})
	w := sgetest.Wallet()
	if r := e.Post(t, "/api/register", "", registerBody(w)); r.Status != 400 {
		t.Fatalf("without key: %d", r.Status)
	}
	if r := e.Post(t, "/api/register", `"quoted key"`, registerBody(w)); r.Status != 201 {
		t.Fatalf("with sf-string key: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/api/register", `"quoted key"`, registerBody(w)); r.Header.Get("X-Idempotency") != "HIT" {
		t.Fatalf("replay of quoted key: %q", r.Header.Get("X-Idempotency"))
	}
	var n int
	_ = e.Store.Scan(persistence.PrefixSettlement, func(_, _ []byte) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d settlements, want 1", n)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := sgetest.Start(t, nil)
	if r := e.Do(t, "GET", "/healthz", ""); r.Status != 200 {
		t.Fatalf("healthz %d", r.Status)
	}
	if r := e.Do(t, "GET", "/readyz", ""); r.Status != 200 {
		t.Fatalf("readyz %d", r.Status)
	}
	e.Server.SetReady(false)
	if r := e.Do(t, "GET", "/readyz", ""); r.Status != 503 {
		t.Fatalf("readyz while draining: %d", r.Status)
	}
}
