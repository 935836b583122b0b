package gateway_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/otlptest"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/telemetry"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// startTraced runs the service with tracing on, exporting to a fresh
// receiver; flush shuts the provider down, exporting every span ended so far.
func startTraced(t *testing.T) (e *sgetest.Env, rcv *otlptest.Receiver, flush func()) {
	rcv = otlptest.NewReceiver(t)
	tp, shutdown, err := telemetry.StartTracing(context.Background(), telemetry.TracingConfig{Enabled: true, Endpoint: rcv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	e = sgetest.Start(t, func(c *gateway.Config) { c.TracerProvider = tp })
	return e, rcv, func() {
		if err := shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// A request carrying a client's traceparent: its span joins the client's
// trace, the wallet step is its child, the Pebble commit the step's child,
// and the settlement it creates stores the request span's traceparent.
func TestTracingSpans(t *testing.T) {
	e, rcv, flush := startTraced(t)
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	w := sgetest.Wallet()
	resp := e.Post(t, "/api/register", "k1", registerBody(w), "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	if resp.Status != 201 {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	settlementID, _ := resp.JSON(t)["settlementId"].(string)
	e.Do(t, http.MethodGet, "/api/settlements/"+settlementID, "")
	flush()

	reqs := rcv.Named("POST /api/register")
	steps := rcv.Named("wallet.step")
	commits := rcv.Named("pebble.commit")
	if len(reqs) != 1 || len(steps) != 1 || len(commits) != 1 {
		t.Fatalf("spans: %d request, %d step, %d commit; want one each", len(reqs), len(steps), len(commits))
	}
	req, step, commit := reqs[0], steps[0], commits[0]
	if hexID(req.TraceId) != clientTrace || hexID(req.ParentSpanId) != clientSpan {
		t.Errorf("request span trace %s parent %s, want the client's %s/%s", hexID(req.TraceId), hexID(req.ParentSpanId), clientTrace, clientSpan)
	}
	if req.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span kind %v", req.Kind)
	}
	attrs := map[string]string{}
	for _, a := range req.Attributes {
		attrs[a.Key] = a.Value.String()
	}
	if !strings.Contains(attrs["http.route"], "/api/register") || !strings.Contains(attrs["http.response.status_code"], "201") {
		t.Errorf("request span attributes %v", attrs)
	}
	if !bytes.Equal(step.ParentSpanId, req.SpanId) || !bytes.Equal(step.TraceId, req.TraceId) {
		t.Errorf("wallet.step parent %s, want the request span %s", hexID(step.ParentSpanId), hexID(req.SpanId))
	}
	if !bytes.Equal(commit.ParentSpanId, step.SpanId) || !bytes.Equal(commit.TraceId, req.TraceId) {
		t.Errorf("pebble.commit parent %s, want wallet.step %s", hexID(commit.ParentSpanId), hexID(step.SpanId))
	}
	if commit.StartTimeUnixNano < step.StartTimeUnixNano || commit.EndTimeUnixNano > step.EndTimeUnixNano {
		t.Error("pebble.commit is not inside wallet.step")
	}

	// The route template names the GET, not the id.
	if got := rcv.Named("GET /api/settlements/{id}"); len(got) != 1 {
		t.Errorf("%d spans named GET /api/settlements/{id}", len(got))
	}

	sts := e.Settlements(t, w)
	want := "00-" + clientTrace + "-" + hexID(req.SpanId) + "-01"
	if len(sts) != 1 || sts[0].TraceParent != want {
		t.Fatalf("settlement traceparent %q, want the request span's %q", sts[0].TraceParent, want)
	}
}

// Without a client traceparent the request span is a root.
func TestTracingRootSpan(t *testing.T) {
	e, rcv, flush := startTraced(t)
	e.Post(t, "/api/claim/prepare", "", `{"wallet":"`+sgetest.Wallet()+`","amount":"5"}`)
	flush()
	reqs := rcv.Named("POST /api/claim/prepare")
	if len(reqs) != 1 || len(reqs[0].ParentSpanId) != 0 {
		t.Fatalf("request spans %v, want one root", reqs)
	}
	if s := rcv.Named("wallet.step"); len(s) != 1 || !bytes.Equal(s[0].ParentSpanId, reqs[0].SpanId) {
		t.Fatal("wallet.step not under the request span")
	}
}

// exporterGoroutines counts goroutines running OTel SDK or exporter code.
func exporterGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "go.opentelemetry.io/otel/sdk") || strings.Contains(g, "go.opentelemetry.io/otel/exporters") {
			n++
		}
	}
	return n
}

// With tracing off the service runs no exporter goroutine; with it on the
// batch span processor's goroutine is there (the check can see one).
func TestTracingOffStartsNoExporter(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		tp, shutdown, err := telemetry.StartTracing(context.Background(), telemetry.TracingConfig{Endpoint: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(context.Background())
		e := sgetest.Start(t, func(c *gateway.Config) { c.TracerProvider = tp })
		e.Post(t, "/api/register", "k", registerBody(sgetest.Wallet()), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if n := exporterGoroutines(); n != 0 {
			t.Fatalf("%d OTel SDK goroutines with tracing off", n)
		}
	})
	t.Run("on", func(t *testing.T) {
		e, _, flush := startTraced(t)
		e.Post(t, "/api/register", "k", registerBody(sgetest.Wallet()))
		if n := exporterGoroutines(); n == 0 {
			t.Fatal("no OTel SDK goroutine with tracing on: the check sees nothing")
		}
		flush()
	})
}

// Each settlement attempt is a span in the trace of the request that
// created the settlement (its child, with a link to it), and the real
// backend receives that span's traceparent.
func TestSettlementAttemptSpanJoinsRequestTrace(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	tp, shutdown, err := telemetry.StartTracing(context.Background(), telemetry.TracingConfig{Enabled: true, Endpoint: rcv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	seen := make(chan string, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusOK)
	}))
	defer backend.Close()
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.TracerProvider = tp
		c.Settlements.Mode = actors.ModeReal
		c.Settlements.URL = backend.URL
	})
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	w := sgetest.Wallet()
	resp := e.Post(t, "/api/register", "k1", registerBody(w), "traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	if resp.Status != 201 {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	id, _ := resp.JSON(t)["settlementId"].(string)
	sgetest.Eventually(t, 30*time.Second, "settlement succeeded", func() bool {
		st, err := e.System.Settlement(id)
		return err == nil && st.Status == "succeeded"
	})
	got := <-seen
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs, attempts := rcv.Named("POST /api/register"), rcv.Named("settlement.attempt")
	if len(reqs) != 1 || len(attempts) != 1 {
		t.Fatalf("%d request spans, %d attempt spans; want one each", len(reqs), len(attempts))
	}
	req, att := reqs[0], attempts[0]
	if !bytes.Equal(att.TraceId, req.TraceId) || !bytes.Equal(att.ParentSpanId, req.SpanId) {
		t.Errorf("attempt span trace %s parent %s, want the request's %s/%s", hexID(att.TraceId), hexID(att.ParentSpanId), hexID(req.TraceId), hexID(req.SpanId))
	}
	if len(att.Links) != 1 || !bytes.Equal(att.Links[0].SpanId, req.SpanId) {
		t.Errorf("attempt span links %v, want the request span", att.Links)
	}
	if want := "00-" + clientTrace + "-" + hexID(att.SpanId) + "-01"; got != want {
		t.Errorf("backend saw traceparent %q, want the attempt span's %q", got, want)
	}
}
