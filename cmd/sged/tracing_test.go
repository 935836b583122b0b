package main

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sgeplatform/sge/internal/sgetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTEL_ENABLED and the seed's endpoint form (ending in /v1/traces) reach the
// exporter, and SIGTERM flushes the last request's spans before exit.
func TestTracingFromEnvFlushedOnShutdown(t *testing.T) {
	var mu sync.Mutex
	var paths, names []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var msg coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &msg); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer rcv.Close()

	c := startChild(t, []string{"DATA_DIR=" + t.TempDir(), "ADDR=127.0.0.1:0",
		"OTEL_ENABLED=true", "OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL + "/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="})
	resp, err := http.Post(c.url()+"/api/register", "application/json", strings.NewReader(`{"wallet":"`+sgetest.Wallet()+`"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	if code := c.terminate(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(names, ",")
	for _, want := range []string{"POST /api/register", "wallet.step", "pebble.commit"} {
		if !strings.Contains(got, want) {
			t.Errorf("span %q not exported before exit; got %v", want, names)
		}
	}
	for _, p := range paths {
		if p != "/v1/traces" {
			t.Errorf("exported to %s", p)
		}
	}
}
