package transport

import (
	"context"
	"encoding/hex"

	"github.com/sgeplatform/sge/telemetry"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the request spans.
const tracerName = "github.com/sgeplatform/sge/transport"

// spanKey is the RequestCtx user value under which a traced request's span
// is handed from observe to the route's handler.
const spanKey = "sge.span"

// traced runs h inside a server span named name ("POST /api/register"): the
// parent is the W3C traceparent of the request, if any. Only called when
// tracing is on; with it off the request path does not touch OTel at all.
func (s *Server) traced(ctx *fasthttp.RequestCtx, name, method, route string, h fasthttp.RequestHandler) {
	parent := telemetry.Extract(context.Background(), &ctx.Request.Header)
	_, span := s.tracer.Start(parent, name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
		))
	ctx.SetUserValue(spanKey, span)
	h(ctx)
	status := ctx.Response.StatusCode()
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
	ctx.RemoveUserValue(spanKey)
}

// requestSpan returns the span observe started for ctx, or nil.
func (s *Server) requestSpan(ctx *fasthttp.RequestCtx) trace.Span {
	if s.tracer == nil {
		return nil
	}
	span, _ := ctx.UserValue(spanKey).(trace.Span)
	return span
}

// AppendTraceParent appends sc as a W3C traceparent header value,
// "00-<trace id>-<span id>-<flags>".
func AppendTraceParent(dst []byte, sc trace.SpanContext) []byte {
	tid, sid, flags := sc.TraceID(), sc.SpanID(), [1]byte{byte(sc.TraceFlags())}
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, flags[:])
}
