package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

const crashSecret = "crash-test-commerce-secret"

// deliverEvent posts a signed charge:confirmed delivery, shaped like
// Commerce's documented payload, and returns status and result.
func deliverEvent(t *testing.T, url string, delivery int, eventID, wallet string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%d,"scheduled_for":"2017-01-31T20:50:02Z","event":{"id":%q,"resource":"event",`+
		`"type":"charge:confirmed","api_version":"2018-03-22","created_at":"2017-01-31T20:49:02Z",`+
		`"data":{"id":"f765421f2-0f46-4d0f-a1b8-0ffbc1e1b5a4","code":"66BEOV2A","metadata":{"wallet":%q},`+
		`"pricing":{"local":{"amount":"25.00","currency":"USD"}},"payments":[]}}}`, delivery, eventID, wallet)
	m := hmac.New(sha256.New, []byte(crashSecret))
	m.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, url+"/api/webhooks/commerce", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CC-Webhook-Signature", hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	defer resp.Body.Close()
	var a struct{ Result string }
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a.Result
}

// kill -9 right after the answer, then Commerce's redelivery to the
// restarted server: still exactly one payment settlement, because the
// dedupe record was committed, synced, with the settlement before the 200.
func TestWebhookCrashThenRedeliveryKeepsOneSettlement(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sged as a child process")
	}
	dir := t.TempDir()
	env := []string{"DATA_DIR=" + dir, "ADDR=127.0.0.1:0", "COMMERCE_WEBHOOK_SECRET=" + crashSecret}
	c := startChild(t, env)
	const events = 5
	wallets, ids := make([]string, events), make([]string, events)
	for i := range events {
		wallets[i], ids[i] = sgetest.Wallet(), fmt.Sprintf("9f0c7a3e-0000-4000-8000-%012d", i)
		if status, result := deliverEvent(t, c.url(), 1, ids[i], wallets[i]); status != 200 || result != "processed" {
			t.Fatalf("first delivery %d: %d %q", i, status, result)
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited

	c = startChild(t, env)
	for i := range events {
		if status, result := deliverEvent(t, c.url(), 2, ids[i], wallets[i]); status != 200 || result != "duplicate" {
			t.Fatalf("redelivery %d after kill -9: %d %q", i, status, result)
		}
	}
	if code := c.terminate(t); code != 0 {
		t.Fatalf("graceful stop exited %d\n%s", code, c.stderr)
	}
	store, err := persistence.Open(persistence.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, w := range wallets {
		sts := sgetest.Settlements(t, store, w)
		if len(sts) != 1 || sts[0].Kind != persistence.KindPayment || sts[0].EventID != ids[i] {
			t.Fatalf("wallet %d: settlements %+v, want one payment", i, sts)
		}
	}
}

func TestWebhookConfig(t *testing.T) {
	env := map[string]string{"COMMERCE_WEBHOOK_SECRET": "s3cr3t-value", "DATA_DIR": t.TempDir()}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Transport.CommerceWebhookSecret != "s3cr3t-value" || cfg.Actors.WebhookDedupeTTL != 168*time.Hour {
		t.Fatalf("secret %q ttl %s", cfg.Transport.CommerceWebhookSecret, cfg.Actors.WebhookDedupeTTL)
	}
	if strings.Contains(fmt.Sprint(cfg.effective...), "s3cr3t-value") {
		t.Fatalf("secret in the start-up settings: %v", cfg.effective)
	}

	var stderr bytes.Buffer
	env = map[string]string{"WEBHOOK_DEDUPE_TTL": "24h", "COMMERCE_WEBHOOK_SECRET": " padded "}
	if code := run(context.Background(), nil, func(k string) string { return env[k] }, &stderr); code != exitConfig {
		t.Fatalf("exit %d, want %d", code, exitConfig)
	}
	for _, want := range []string{"WEBHOOK_DEDUPE_TTL", "COMMERCE_WEBHOOK_SECRET"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not mention %s:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "padded") {
		t.Errorf("secret value in the error output:\n%s", stderr.String())
	}
}
