package actors

import (
	"context"
	"fmt"

	"github.com/sgeplatform/sge/persistence"
	"go.opentelemetry.io/otel/propagation"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the actor spans.
const tracerName = "github.com/sgeplatform/sge/actors"

// Span names.
const (
	spanStep    = "wallet.step"
	spanCommit  = "pebble.commit"
	spanAttempt = "settlement.attempt"
)

// startStep opens r's wallet step span, a child of the request span. It runs
// from the moment the actor takes r off its mailbox (so time stashed behind
// the wallet's commit in flight counts) until r is answered.
func (a *walletActor) startStep(r *Request) {
	parent := trace.ContextWithSpanContext(context.Background(), r.SpanContext)
	_, r.span = a.sys.tracer.Start(parent, spanStep, trace.WithAttributes(
		attribute.String("sge.op", r.Op.scope()),
		attribute.String("sge.wallet", a.wallet),
	))
}

func (a *walletActor) endStep(r *Request) {
	r.span.SetAttributes(attribute.Int("sge.status", r.Status), attribute.String("sge.idempotency", idemName(r.Idempotency)))
	if r.Status >= 500 {
		r.span.SetStatus(codes.Error, "")
	}
	r.span.End()
	r.span = nil
}

// startCommit opens the span of the wallet's batch, a child of the step.
//
// The group committer merges every batch queued since its last fsync into
// one synced commit. The span is per batch and covers submit to durable:
// the wait behind the group in progress plus the group's own commit, which is
// the latency this request pays. The group's size is in
// sge_pebble_commit_batches; one shared span per group with links from each
// batch would show the sharing, but cost a span per group even when no
// request in it is sampled.
func (a *walletActor) startCommit(r *Request) trace.Span {
	_, span := a.sys.tracer.Start(trace.ContextWithSpan(context.Background(), r.span), spanCommit,
		trace.WithAttributes(attribute.String("db.system.name", "pebble")))
	return span
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func idemName(i int) string {
	switch i {
	case IdemMiss:
		return "miss"
	case IdemHit:
		return "hit"
	}
	return "none"
}

// startAttempt opens the span of one settlement attempt. Its parent is the
// request span that created the settlement (its W3C traceparent is stored
// with the settlement), and it links to it too, so the attempt shows up in
// that request's trace even when it runs days later or after a restart.
// The backend receives this span's traceparent. Without a tracer, or a
// stored traceparent, ctx comes back unchanged.
func (s *Supervisor) startAttempt(ctx context.Context, st *persistence.Settlement) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	parent := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": st.TraceParent})
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("sge.settlement.id", st.ID),
			attribute.String("sge.settlement.kind", st.Kind),
			attribute.Int("sge.settlement.attempt", st.Attempts),
		),
	}
	if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return s.tracer.Start(parent, spanAttempt, opts...)
}

func endAttempt(span trace.Span, err error, panicked any) {
	if span == nil {
		return
	}
	if panicked != nil {
		err = fmt.Errorf("panic: %v", panicked)
	}
	endSpan(span, err)
}
