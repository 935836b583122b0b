package gateway_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

const (
	testSecret   = "3c1d2a6f-commerce-shared-secret"
	webhookRoute = "/api/webhooks/commerce"
)

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// commerceEvent is a delivery shaped like the example in Coinbase Commerce's
// webhook documentation (API 2018-03-22), with the wallet in the charge's
// metadata. delivery is the outer id, which changes between retries.
func commerceEvent(delivery int, eventID, typ, metadataWallet string) string {
	meta := `{"customer_id":"id_1005","customer_name":"Satoshi Nakamoto"}`
	if metadataWallet != "" {
		meta = `{"customer_id":"id_1005","customer_name":"Satoshi Nakamoto","wallet":` + metadataWallet + `}`
	}
	return fmt.Sprintf(`{
  "id": %d,
  "scheduled_for": "2017-01-31T20:50:%02dZ",
  "event": {
    "id": %q,
    "resource": "event",
    "type": %q,
    "api_version": "2018-03-22",
    "created_at": "2017-01-31T20:49:02Z",
    "data": {
      "id": "f765421f2-0f46-4d0f-a1b8-0ffbc1e1b5a4",
      "resource": "charge",
      "code": "66BEOV2A",
      "name": "The Sovereign Individual",
      "description": "Mastering the Transition to the Information Age",
      "hosted_url": "https://commerce.coinbase.com/charges/66BEOV2A",
      "created_at": "2017-01-31T20:49:02Z",
      "expires_at": "2017-01-31T21:49:02Z",
      "confirmed_at": "2017-01-31T20:55:02Z",
      "timeline": [{"time": "2017-01-31T20:49:02Z", "status": "NEW"}],
      "metadata": %s,
      "pricing_type": "fixed_price",
      "pricing": {
        "local": {"amount": "100.00", "currency": "USD"},
        "bitcoin": {"amount": "1.00000000", "currency": "BTC"},
        "ethereum": {"amount": "10.000000000", "currency": "ETH"}
      },
      "payments": [],
      "addresses": {
        "bitcoin": "mymZkiXhQNd6VWWG7VGSVdDX9bKmviti3U",
        "ethereum": "0x419f91df39951fd4e8acc8f1874b01c0c78ceba6"
      }
    }
  }
}`, delivery, delivery%60, eventID, typ, meta)
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func startWebhooks(t *testing.T, configure func(*gateway.Config)) *sgetest.Env {
	return sgetest.Start(t, func(c *gateway.Config) {
		c.Transport.CommerceWebhookSecret = testSecret
		if configure != nil {
			configure(c)
		}
	})
}

func deliver(t testing.TB, e *sgetest.Env, body string) *sgetest.Response {
	t.Helper()
	return e.Do(t, http.MethodPost, webhookRoute, body, "X-CC-Webhook-Signature", sign(testSecret, body))
}

type webhookAnswer struct {
	EventID, Result, SettlementID string
}

func answerOf(t testing.TB, r *sgetest.Response) webhookAnswer {
	t.Helper()
	var a webhookAnswer
	if r.Status != 200 || json.Unmarshal(r.Body, &a) != nil {
		t.Fatalf("answer %d %s", r.Status, r.Body)
	}
	return a
}

// webhookCount is sge_webhook_deliveries_total{type,result}.
func webhookCount(t testing.TB, reg *prometheus.Registry, typ, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sge_webhook_deliveries_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "type" && l.GetValue() != typ) || (l.GetName() == "result" && l.GetValue() != result) {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func countKeys(t testing.TB, e *sgetest.Env, prefix []byte) int {
	t.Helper()
	n := 0
	if err := e.Store.Scan(prefix, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func walletEvent(t testing.TB, e *sgetest.Env, wallet, eventID string) *persistence.WebhookEvent {
	t.Helper()
	v, err := e.Store.Get(nil, persistence.AppendWalletKey(nil, []byte(wallet), persistence.TagWebhookEvent, []byte(eventID)))
	if err != nil {
		return nil
	}
	var ev persistence.WebhookEvent
	if err := json.Unmarshal(v, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// A confirmed charge creates one payment settlement, however often and
// however concurrently Commerce delivers it.
func TestWebhookConfirmedIsProcessedOnce(t *testing.T) {
	e := startWebhooks(t, nil)

	t.Run("sequential", func(t *testing.T) {
		w, id := sgetest.Wallet(), uuid()
		var first webhookAnswer
		for i := range 10 {
			a := answerOf(t, deliver(t, e, commerceEvent(i+1, id, "charge:confirmed", `"`+w+`"`)))
			want := "duplicate"
			if i == 0 {
				first, want = a, "processed"
			}
			if a.Result != want || a.EventID != id || a.SettlementID != first.SettlementID {
				t.Fatalf("delivery %d: %+v, want %s of %+v", i+1, a, want, first)
			}
		}
		sts := e.Settlements(t, w)
		if len(sts) != 1 {
			t.Fatalf("%d settlements, want 1", len(sts))
		}
		st := sts[0]
		if st.ID != first.SettlementID || st.Kind != persistence.KindPayment || st.Status == persistence.StatusDead ||
			st.EventID != id || st.Amount != "100.00" || st.Currency != "USD" || st.Wallet != w {
			t.Fatalf("settlement %+v", st)
		}
		if got := e.Do(t, http.MethodGet, "/api/settlements/"+st.ID, ""); got.Status != 200 || got.JSON(t)["kind"] != "payment" {
			t.Fatalf("GET settlement: %d %s", got.Status, got.Body)
		}
		if ev := walletEvent(t, e, w, id); ev == nil || ev.Type != "charge:confirmed" || ev.SettlementID != st.ID || ev.ChargeCode != "66BEOV2A" {
			t.Fatalf("wallet event record %+v", ev)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		w, id := sgetest.Wallet(), uuid()
		const n = 10
		answers := make([]webhookAnswer, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i] = answerOf(t, deliver(t, e, commerceEvent(100+i, id, "charge:confirmed", `"`+w+`"`)))
			}()
		}
		close(start)
		wg.Wait()
		processed := 0
		for _, a := range answers {
			if a.Result == "processed" {
				processed++
			}
			if a.SettlementID != answers[0].SettlementID || a.SettlementID == "" {
				t.Fatalf("answers disagree: %+v", answers)
			}
		}
		if processed != 1 {
			t.Fatalf("%d deliveries processed, want 1: %+v", processed, answers)
		}
		if sts := e.Settlements(t, w); len(sts) != 1 {
			t.Fatalf("%d settlements, want 1", len(sts))
		}
	})

	if p, d := webhookCount(t, e.Registry, "charge:confirmed", "processed"), webhookCount(t, e.Registry, "charge:confirmed", "duplicate"); p != 2 || d != 18 {
		t.Fatalf("metrics: processed %v duplicate %v, want 2 and 18", p, d)
	}
}

// One event id named for two wallets at once (not something Commerce does,
// but the dedupe record is global): one effect in total.
func TestWebhookOneEventTwoWallets(t *testing.T) {
	e := startWebhooks(t, nil)
	busy := 0
	defer func() { t.Logf("%d deliveries told 503 while the event was in flight for the other wallet", busy) }()
	for round := range 20 {
		id := uuid()
		wallets := []string{sgetest.Wallet(), sgetest.Wallet()}
		var wg sync.WaitGroup
		statuses := make([]int, 4)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = deliver(t, e, commerceEvent(i, id, "charge:confirmed", `"`+wallets[i%2]+`"`)).Status
			}()
		}
		wg.Wait()
		// A delivery racing one for the other wallet may be told 503 (retry);
		// it is never processed a second time.
		for {
			n := len(e.Settlements(t, wallets[0])) + len(e.Settlements(t, wallets[1]))
			if n != 1 {
				t.Fatalf("round %d: %d settlements, want 1 (statuses %v)", round, n, statuses)
			}
			retry := false
			for i, s := range statuses {
				switch s {
				case 200:
				case 503:
					busy++
					statuses[i] = deliver(t, e, commerceEvent(i, id, "charge:confirmed", `"`+wallets[i%2]+`"`)).Status
					retry = true
				default:
					t.Fatalf("round %d: status %d", round, s)
				}
			}
			if !retry {
				break
			}
		}
	}
}

func TestWebhookBadSignatureStoresNothing(t *testing.T) {
	e := startWebhooks(t, nil)
	w := sgetest.Wallet()
	body := commerceEvent(1, uuid(), "charge:confirmed", `"`+w+`"`)
	other := commerceEvent(2, uuid(), "charge:confirmed", `"`+w+`"`)
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"missing header", nil},
		{"empty header", []string{"X-CC-Webhook-Signature", ""}},
		{"other secret", []string{"X-CC-Webhook-Signature", sign("not-the-secret", body)}},
		{"signature of another body", []string{"X-CC-Webhook-Signature", sign(testSecret, other)}},
		{"not hex", []string{"X-CC-Webhook-Signature", "zz" + sign(testSecret, body)[2:]}},
		{"truncated", []string{"X-CC-Webhook-Signature", sign(testSecret, body)[:62]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do(t, http.MethodPost, webhookRoute, body, tc.headers...)
			if r.Status != 401 || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
	// The signature is over the exact bytes: re-serialized JSON is another body.
	var v any
	_ = json.Unmarshal([]byte(body), &v)
	compact, _ := json.Marshal(v)
	if r := e.Do(t, http.MethodPost, webhookRoute, string(compact), "X-CC-Webhook-Signature", sign(testSecret, body)); r.Status != 401 {
		t.Fatalf("re-serialized body: %d", r.Status)
	}
	if n := countKeys(t, e, persistence.PrefixWebhook); n != 0 || len(e.Settlements(t, w)) != 0 {
		t.Fatalf("stored after bad signatures: %d dedupe records", n)
	}
	if got := webhookCount(t, e.Registry, "unverified", "bad_signature"); got != 7 {
		t.Fatalf("bad_signature count %v, want 7", got)
	}
	// The upper-case hex of a valid signature is the same signature.
	if r := e.Do(t, http.MethodPost, webhookRoute, body, "X-CC-Webhook-Signature", fmt.Sprintf("%X", mustHex(sign(testSecret, body)))); r.Status != 200 {
		t.Fatalf("upper-case signature: %d %s", r.Status, r.Body)
	}
}

func mustHex(s string) []byte { b, _ := hex.DecodeString(s); return b }

func TestWebhookMalformedAfterValidSignature(t *testing.T) {
	e := startWebhooks(t, nil)
	for _, body := range []string{
		`{"event":`,
		`[]`,
		`{"id":1}`,
		`{"event":{"id":"","type":"charge:confirmed"}}`,
		`{"event":{"id":"a/b","type":"charge:confirmed"}}`,
		`{"event":{"id":"` + uuid() + `"}}`,
	} {
		if r := deliver(t, e, body); r.Status != 400 {
			t.Fatalf("%s: %d %s", body, r.Status, r.Body)
		}
	}
	body := commerceEvent(1, uuid(), "charge:confirmed", `"`+sgetest.Wallet()+`"`)
	r := e.Do(t, http.MethodPost, webhookRoute, body, "X-CC-Webhook-Signature", sign(testSecret, body), "Content-Type", "text/plain")
	if r.Status != 415 {
		t.Fatalf("text/plain: %d", r.Status)
	}
	if n := countKeys(t, e, persistence.PrefixWebhook); n != 0 {
		t.Fatalf("%d dedupe records after refused deliveries", n)
	}
}

// charge:pending and charge:failed are recorded on the wallet; other types
// are acknowledged and counted; an event without a valid wallet is
// acknowledged, and only remembered so that a redelivery is a duplicate.
func TestWebhookEventKinds(t *testing.T) {
	e := startWebhooks(t, nil)
	for _, typ := range []string{"charge:pending", "charge:failed"} {
		w, id := sgetest.Wallet(), uuid()
		if a := answerOf(t, deliver(t, e, commerceEvent(1, id, typ, `"`+w+`"`))); a.Result != "processed" || a.SettlementID != "" {
			t.Fatalf("%s: %+v", typ, a)
		}
		if ev := walletEvent(t, e, w, id); ev == nil || ev.Type != typ || ev.Wallet != w || ev.ChargeID == "" {
			t.Fatalf("%s: record %+v", typ, ev)
		}
		if len(e.Settlements(t, w)) != 0 {
			t.Fatalf("%s created a settlement", typ)
		}
		if a := answerOf(t, deliver(t, e, commerceEvent(2, id, typ, `"`+w+`"`))); a.Result != "duplicate" {
			t.Fatalf("%s again: %+v", typ, a)
		}
	}

	w := sgetest.Wallet()
	for _, typ := range []string{"charge:unknown-future-type", "invoice:paid", "charge:created"} {
		id := uuid()
		if a := answerOf(t, deliver(t, e, commerceEvent(1, id, typ, `"`+w+`"`))); a.Result != "ignored" {
			t.Fatalf("%s: %+v", typ, a)
		}
		if walletEvent(t, e, w, id) != nil {
			t.Fatalf("%s recorded on the wallet", typ)
		}
	}
	if got := webhookCount(t, e.Registry, "other", "ignored"); got != 2 {
		t.Fatalf("other/ignored %v, want 2", got)
	}
	if got := webhookCount(t, e.Registry, "charge:created", "ignored"); got != 1 {
		t.Fatalf("charge:created/ignored %v, want 1", got)
	}

	for name, meta := range map[string]string{
		"no wallet":      "",
		"invalid wallet": `"0x1234"`,
		"bad checksum":   `"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"`,
		"not a string":   `42`,
	} {
		before := countKeys(t, e, []byte("w/"))
		id := uuid()
		if a := answerOf(t, deliver(t, e, commerceEvent(1, id, "charge:confirmed", meta))); a.Result != "ignored" {
			t.Fatalf("%s: %+v", name, a)
		}
		if a := answerOf(t, deliver(t, e, commerceEvent(2, id, "charge:confirmed", meta))); a.Result != "duplicate" {
			t.Fatalf("%s redelivered: %+v", name, a)
		}
		if after := countKeys(t, e, []byte("w/")); after != before {
			t.Fatalf("%s: wallet keys %d -> %d", name, before, after)
		}
		if _, err := e.Store.Get(nil, persistence.AppendWebhookKey(nil, id)); err != nil {
			t.Fatalf("%s: no dedupe record: %v", name, err)
		}
	}
	if got := webhookCount(t, e.Registry, "charge:confirmed", "ignored"); got != 4 {
		t.Fatalf("charge:confirmed/ignored %v, want 4", got)
	}
}

func TestWebhookRouteOffWithoutSecret(t *testing.T) {
	e := sgetest.Start(t, nil)
	body := commerceEvent(1, uuid(), "charge:confirmed", `"`+sgetest.Wallet()+`"`)
	if r := e.Do(t, http.MethodPost, webhookRoute, body, "X-CC-Webhook-Signature", sign(testSecret, body)); r.Status != 404 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

// Dedupe records live WEBHOOK_DEDUPE_TTL; then they are purged and the
// event id is new again.
func TestWebhookDedupeExpiresAndIsPurged(t *testing.T) {
	var clk clock
	e := startWebhooks(t, func(c *gateway.Config) { c.Actors.Now = clk.now })
	w, id := sgetest.Wallet(), uuid()
	body := commerceEvent(1, id, "charge:pending", `"`+w+`"`)
	answerOf(t, deliver(t, e, body))
	answerOf(t, deliver(t, e, commerceEvent(2, uuid(), "charge:pending", ""))) // wallet-less
	if n := countKeys(t, e, persistence.PrefixWebhookExpiry); n != 2 {
		t.Fatalf("%d expiry entries, want 2", n)
	}
	clk.advance(7*24*time.Hour - time.Minute)
	if n, err := e.System.PurgeExpiredWebhooks(); err != nil || n != 0 {
		t.Fatalf("purged %d before expiry (%v)", n, err)
	}
	if a := answerOf(t, deliver(t, e, body)); a.Result != "duplicate" {
		t.Fatalf("before expiry: %+v", a)
	}
	clk.advance(2 * time.Minute)
	if n, err := e.System.PurgeExpiredWebhooks(); err != nil || n != 2 {
		t.Fatalf("purged %d, want 2 (%v)", n, err)
	}
	if n := countKeys(t, e, persistence.PrefixWebhook) + countKeys(t, e, persistence.PrefixWebhookExpiry); n != 0 {
		t.Fatalf("%d webhook keys left", n)
	}
	if a := answerOf(t, deliver(t, e, body)); a.Result != "processed" {
		t.Fatalf("after expiry: %+v", a)
	}
}
