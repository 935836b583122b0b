package transport

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// A panic in a handler is answered by the router's PanicHandler with a
// plain 500 problem: no panic value, no stack trace, no file names. The
// route that panics exists only in this test; no production route is known
// to panic (the fuzz target checks that), so there is no honest way to reach
// the handler from outside without a test hook.
func TestPanicAnswersCleanProblem(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "internal detail 0xdeadbeef"
	s.router.GET("/test-only/panic", func(*fasthttp.RequestCtx) { panic(secret) })

	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/test-only/panic")
	s.Handler()(&ctx)

	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 500 || string(ctx.Response.Header.ContentType()) != "application/problem+json" {
		t.Fatalf("got %d %q %s", ctx.Response.StatusCode(), ctx.Response.Header.ContentType(), body)
	}
	for _, leak := range []string{secret, "goroutine", ".go:", "panic"} {
		if strings.Contains(body, leak) {
			t.Fatalf("the 500 body carries %q: %s", leak, body)
		}
	}
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), secret) {
		t.Fatalf("the panic was not logged for the operator:\n%s", logs.String())
	}
}
