// Package otlptest is a minimal OTLP/HTTP trace collector for tests: it keeps
// every span it is sent.
package otlptest

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Receiver is an OTLP/HTTP trace collector on 127.0.0.1. It accepts protobuf
// exports (gzip or not) to any path ending in /v1/traces and answers anything
// else with 400, so a misdirected export loses its spans.
type Receiver struct {
	srv *httptest.Server
	mu  struct {
		sync.Mutex
		paths    []string        // of every request, accepted or not, in order
		services []string        // service.name of each resource, in order
		spans    []*tracepb.Span // in the order received
	}
}

// NewReceiver starts a Receiver, closed when t's test ends.
func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.export))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) export(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.mu.paths = append(r.mu.paths, req.URL.Path)
	r.mu.Unlock()
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &msg)
	}
	if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" || !strings.HasSuffix(req.URL.Path, "/v1/traces") {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.mu.services = append(r.mu.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.mu.spans = append(r.mu.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// URL is the collector's base URL, without /v1/traces.
func (r *Receiver) URL() string { return r.srv.URL }

// Spans returns every span received so far.
func (r *Receiver) Spans() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.mu.spans...)
}

// Named returns the spans called name.
func (r *Receiver) Named(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.mu.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

// Paths returns the URL path of every request received, including those
// refused for going to the wrong path.
func (r *Receiver) Paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.mu.paths...)
}

// ServiceNames returns the service.name of every resource received.
func (r *Receiver) ServiceNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.mu.services...)
}
