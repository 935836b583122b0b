package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sgeplatform/sge/internal/otlptest"
	"github.com/sgeplatform/sge/internal/sgetest"
)

// OTEL_ENABLED and the seed's endpoint form (ending in /v1/traces) reach the
// exporter, and SIGTERM flushes the last request's spans before exit.
func TestTracingFromEnvFlushedOnShutdown(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	c := startChild(t, []string{"DATA_DIR=" + t.TempDir(), "ADDR=127.0.0.1:0",
		"OTEL_ENABLED=true", "OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL() + "/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="})
	resp, err := http.Post(c.url()+"/api/register", "application/json", strings.NewReader(`{"wallet":"`+sgetest.Wallet()+`"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	if code := c.terminate(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.stderr)
	}
	var names []string
	for _, s := range rcv.Spans() {
		names = append(names, s.GetName())
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"POST /api/register", "wallet.step", "pebble.commit"} {
		if !strings.Contains(got, want) {
			t.Errorf("span %q not exported before exit; got %v", want, names)
		}
	}
	for _, p := range rcv.Paths() {
		if p != "/v1/traces" {
			t.Errorf("exported to %s", p)
		}
	}
}
