package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

// Bad input gets a clear 4xx problem that echoes at most a short prefix of
// the input, and stores nothing.
func TestBadInput(t *testing.T) {
	const maxBody = 16 << 10
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.MaxBodyBytes = maxBody })
	w := sgetest.Wallet()
	const mixed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" // valid EIP-55
	claim := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	huge := strings.Repeat("9", 12<<10) // under the body limit, far over any field
	nested := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	cases := []struct {
		name, method, path, ctype, key, body string
		status                               int
	}{
		{"malformed json", "POST", "/api/register", "application/json", "", `{"wallet":`, 400},
		{"truncated json", "POST", "/api/register", "application/json", "", `{"wallet":"` + w[:20], 400},
		{"empty body", "POST", "/api/register", "application/json", "", ``, 400},
		{"not an object", "POST", "/api/register", "application/json", "", `["` + w + `"]`, 400},
		{"trailing garbage", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `"}x`, 400},
		{"two objects", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `"}{"wallet":"` + w + `"}`, 400},
		{"wrong type", "POST", "/api/register", "application/json", "", `{"wallet":42}`, 400},
		{"wrong type null", "POST", "/api/register", "application/json", "", `{"wallet":null}`, 400},
		{"wrong type object", "POST", "/api/register", "application/json", "", `{"wallet":{"a":1}}`, 400},
		{"amount as number", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":100}`, 400},
		{"duplicate key", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","wallet":"` + w + `"}`, 400},
		{"duplicate key escaped", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","wall\u0065t":"` + w + `"}`, 400},
		{"unknown field", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","x":"y"}`, 400},
		{"deep nesting", "POST", "/api/register", "application/json", "", `{"wallet":"` + w + `","x":` + nested + `}`, 400},
		{"huge number", "POST", "/api/register", "application/json", "", `{"wallet":` + huge + `}`, 400},
		{"huge amount number", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":` + huge + `}`, 400},
		{"huge string", "POST", "/api/register", "application/json", "", `{"wallet":"` + huge + `"}`, 400},
		{"invalid utf-8", "POST", "/api/register", "application/json", "", "{\"wallet\":\"\xff\xfe\"}", 400},
		{"missing wallet", "POST", "/api/register", "application/json", "", `{}`, 400},
		{"bad checksum", "POST", "/api/register", "application/json", "", `{"wallet":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"}`, 400},
		{"checksum case flipped", "POST", "/api/register", "application/json", "", `{"wallet":"` + strings.Replace(mixed, "aA", "Aa", 1) + `"}`, 400},
		{"non-hex wallet", "POST", "/api/register", "application/json", "", `{"wallet":"0xzz` + w[4:] + `"}`, 400},
		{"short wallet", "POST", "/api/register", "application/json", "", `{"wallet":"` + w[:41] + `"}`, 400},
		{"wallet without 0x", "POST", "/api/register", "application/json", "", `{"wallet":"` + w[2:] + `00"}`, 400},
		{"decimal amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"1.5"}`, 400},
		{"zero amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"0"}`, 400},
		{"negative amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"-1"}`, 400},
		{"2^256 amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"115792089237316195423570985008687907853269984665640564039457584007913129639936"}`, 400},
		{"exponent amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"1e18"}`, 400},
		{"huge amount", "POST", "/api/claim/prepare", "application/json", "", `{"wallet":"` + w + `","amount":"` + huge + `"}`, 400},
		{"bad txHash", "POST", "/api/claim/record", "application/json", "", `{"wallet":"` + w + `","claimId":"` + claim + `","txHash":"0x12"}`, 400},
		{"non-hex txHash", "POST", "/api/claim/record", "application/json", "", `{"wallet":"` + w + `","claimId":"` + claim + `","txHash":"0x` + strings.Repeat("g", 64) + `"}`, 400},
		{"bad claimId", "POST", "/api/claim/record", "application/json", "", `{"wallet":"` + w + `","claimId":"nope","txHash":"` + sgetest.TxHash() + `"}`, 400},
		{"empty key", "POST", "/api/register", "application/json", `""`, `{"wallet":"` + w + `"}`, 400},
		{"long key", "POST", "/api/register", "application/json", strings.Repeat("k", 256), `{"wallet":"` + w + `"}`, 400},
		{"non-ascii key", "POST", "/api/register", "application/json", "schl\u00fcssel", `{"wallet":"` + w + `"}`, 400},
		{"huge key", "POST", "/api/register", "application/json", strings.Repeat("k", 6000), `{"wallet":"` + w + `"}`, 400},
		{"wrong content type", "POST", "/api/register", "text/plain", "", `{"wallet":"` + w + `"}`, 415},
		{"no content type", "POST", "/api/register", "", "", `{"wallet":"` + w + `"}`, 415},
		{"json lookalike type", "POST", "/api/register", "application/jsonx", "", `{"wallet":"` + w + `"}`, 415},
		{"body too large", "POST", "/api/register", "application/json", "", `{"wallet":"` + strings.Repeat("a", maxBody+1) + `"}`, 413},
		{"unknown route", "GET", "/api/nope", "", "", "", 404},
		{"huge unknown route", "GET", "/api/" + strings.Repeat("x", 4000), "", "", "", 404},
		{"wrong method", "GET", "/api/register", "", "", "", 405},
		{"wrong method put", "PUT", "/api/claim/prepare", "application/json", "", `{}`, 405},
		{"bad settlement id", "GET", "/api/settlements/xyz", "", "", "", 400},
		{"huge settlement id", "GET", "/api/settlements/" + strings.Repeat("A", 4000), "", "", "", 400},
		{"unknown settlement", "GET", "/api/settlements/01ARZ3NDEKTSV4RRFFQ69G5FAV", "", "", "", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.URL+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.key != "" {
				req.Header["Idempotency-Key"] = []string{tc.key}
			}
			resp, err := e.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %q %s, want %d problem", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
			}
			var p struct {
				Type, Title, Detail string
				Status              int
			}
			if err := json.Unmarshal(body, &p); err != nil || p.Status != tc.status || p.Type == "" {
				t.Fatalf("not a problem body: %s (%v)", body, err)
			}
			// The answer names the problem; it does not reflect the input.
			if len(body) > maxProblemBytes {
				t.Fatalf("problem body of %d bytes for %d bytes of input: %.300s", len(body), len(tc.body)+len(tc.path)+len(tc.key), body)
			}
		})
	}
	n := 0
	_ = e.Store.Scan([]byte("w/"), func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("bad input stored %d wallet records", n)
	}
	_ = e.Store.Scan([]byte("g/"), func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("bad input stored %d index records", n)
	}
}

// maxProblemBytes bounds a problem body: type, title and a detail that
// quotes at most a short prefix of the input.
const maxProblemBytes = 512

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
