package transport

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/router"
	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/jsonw"
	"github.com/sgeplatform/sge/internal/problem"
	"github.com/sgeplatform/sge/persistence"
	"github.com/valyala/fasthttp"
)

// Route templates: the metrics' route label. Unmatched requests share one
// value so a scan of random paths cannot grow the label set.
const (
	routeRegister   = "/api/register"
	routePrepare    = "/api/claim/prepare"
	routeRecord     = "/api/claim/record"
	routeSettlement = "/api/settlements/{id}"
	routePublicKey  = "/api/claim/public-key"
	routeHealthz    = "/healthz"
	routeReadyz     = "/readyz"
	routeMetrics    = "/metrics"
	routeUnknown    = "unmatched"
)

func (s *Server) routes() *router.Router {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.POST(routeRegister, s.observe(fasthttp.MethodPost, routeRegister, s.mutate(actors.OpRegister)))
	r.POST(routePrepare, s.observe(fasthttp.MethodPost, routePrepare, s.mutate(actors.OpClaimPrepare)))
	r.POST(routeRecord, s.observe(fasthttp.MethodPost, routeRecord, s.mutate(actors.OpClaimRecord)))
	if s.cfg.CommerceWebhookSecret != "" {
		r.POST(routeWebhook, s.observe(fasthttp.MethodPost, routeWebhook, s.commerceWebhook))
	}
	r.GET(routeSettlement, s.observe(fasthttp.MethodGet, routeSettlement, s.settlement))
	r.GET(routePublicKey, s.observe(fasthttp.MethodGet, routePublicKey, s.publicKey))
	r.GET(routeHealthz, s.observe(fasthttp.MethodGet, routeHealthz, s.healthz))
	r.GET(routeReadyz, s.observe(fasthttp.MethodGet, routeReadyz, s.readyz))
	if s.cfg.Metrics != nil {
		r.GET(routeMetrics, s.cfg.Metrics)
	}
	if s.cfg.AdminToken != "" && s.cfg.Admin != nil {
		s.adminRoutes(r)
	}
	r.NotFound = s.observeAny(routeUnknown, func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, 404, "not-found", "Not Found", "no such route")
	})
	r.MethodNotAllowed = s.observeAny(routeUnknown, func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, 405, "method-not-allowed", "Method Not Allowed", "this route does not take this method")
	})
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, p any) {
		s.cfg.Logger.Error("handler panicked", "panic", p, "path", string(ctx.Path()))
		writeProblem(ctx, 500, "internal", "Internal Server Error", "the request failed")
	}
	return r
}

func (s *Server) observe(method, route string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	name := method + " " + route
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		if s.tracer != nil {
			s.traced(ctx, name, method, route, h)
		} else {
			h(ctx)
		}
		s.cfg.Observer.ObserveHTTP(method, route, ctx.Response.StatusCode(), time.Since(start))
	}
}

// observeAny labels unmatched requests with a method from a fixed set, so
// arbitrary method tokens cannot grow the label set either.
func (s *Server) observeAny(route string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		h(ctx)
		s.cfg.Observer.ObserveHTTP(methodLabel(ctx.Method()), route, ctx.Response.StatusCode(), time.Since(start))
	}
}

func methodLabel(m []byte) string {
	for _, known := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"} {
		if string(m) == known {
			return known
		}
	}
	return "OTHER"
}

// Body fields per operation; the first is always the wallet.
var fields = map[actors.Op][]string{
	actors.OpRegister:     {"wallet"},
	actors.OpClaimPrepare: {"wallet", "amount"},
	actors.OpClaimRecord:  {"wallet", "claimId", "txHash"},
}

type parseBuf struct {
	vals    [3][]byte
	scratch []byte
	h       hash.Hash
}

var parsePool = sync.Pool{New: func() any { return &parseBuf{h: sha256.New()} }}

func (s *Server) mutate(op actors.Op) fasthttp.RequestHandler {
	names := fields[op]
	fingerprintPrefix := []byte("POST " + op.Route() + "\n")
	return func(ctx *fasthttp.RequestCtx) {
		if !isJSON(ctx.Request.Header.ContentType()) {
			writeProblem(ctx, 415, "unsupported-media-type", "Unsupported Media Type", "send the body as application/json")
			return
		}
		r := actors.NewRequest()
		defer actors.Release(r)
		r.Op = op
		if h := ctx.Request.Header.Peek("Idempotency-Key"); h != nil {
			var err error
			if r.Key, err = input.AppendIdempotencyKey(r.Key[:0], h); err != nil {
				badRequest(ctx, "invalid-idempotency-key", err)
				return
			}
		} else if s.cfg.IdempotencyRequired {
			writeProblem(ctx, 400, "idempotency-key-required", "Bad Request", "this server requires an Idempotency-Key header")
			return
		}

		body := ctx.PostBody()
		pb := parsePool.Get().(*parseBuf)
		defer parsePool.Put(pb)
		vals := pb.vals[:len(names)]
		clear(vals)
		var err error
		if pb.scratch, err = input.DecodeObject(body, names, vals, pb.scratch[:0]); err != nil {
			badRequest(ctx, "invalid-body", err)
			return
		}
		for i, v := range vals {
			if v == nil {
				writeProblem(ctx, 400, "invalid-body", "Bad Request", "missing field "+strconv.Quote(names[i]))
				return
			}
		}
		if r.Wallet, err = input.AppendWallet(r.Wallet[:0], vals[0]); err != nil {
			badRequest(ctx, "invalid-wallet", err)
			return
		}
		switch op {
		case actors.OpClaimPrepare:
			if err = input.Amount(vals[1]); err != nil {
				badRequest(ctx, "invalid-amount", err)
				return
			}
			r.Amount = append(r.Amount[:0], vals[1]...)
		case actors.OpClaimRecord:
			if err = input.ID(vals[1]); err != nil {
				badRequest(ctx, "invalid-claim-id", err)
				return
			}
			r.ClaimID = append(r.ClaimID[:0], vals[1]...)
			if r.TxHash, err = input.AppendTxHash(r.TxHash[:0], vals[2]); err != nil {
				badRequest(ctx, "invalid-tx-hash", err)
				return
			}
		}
		// The fingerprint covers method, route and the raw body: a retry
		// must resend the same bytes to be recognized as the same request.
		pb.h.Reset()
		pb.h.Write(fingerprintPrefix)
		pb.h.Write(body)
		pb.h.Sum(r.Fingerprint[:0])
		r.IP = s.clientIP(ctx)
		// The settlements this request creates keep its trace context, so
		// their attempt spans can link to it: the request span's when
		// tracing is on, otherwise the client's traceparent as sent.
		if span := s.requestSpan(ctx); span != nil {
			r.SpanContext = span.SpanContext()
			r.TraceParent = AppendTraceParent(r.TraceParent[:0], r.SpanContext)
		} else if tp := ctx.Request.Header.Peek("traceparent"); len(tp) > 0 && len(tp) <= 128 {
			r.TraceParent = append(r.TraceParent[:0], tp...)
		}

		if err := s.sys.Do(r); err != nil {
			status, detail := 503, "the service is shutting down; retry with the same Idempotency-Key"
			switch {
			case errors.Is(err, actors.ErrTimeout):
				detail = "no answer in time; retry with the same Idempotency-Key"
			case errors.Is(err, actors.ErrOverloaded):
				detail = "too many wallets are active; retry with the same Idempotency-Key"
			}
			writeProblem(ctx, status, "unavailable", "Service Unavailable", detail)
			// After writeProblem, which resets the response.
			ctx.Response.Header.Set("Retry-After", "1")
			return
		}
		s.writeAnswer(ctx, r)
	}
}

func (s *Server) writeAnswer(ctx *fasthttp.RequestCtx, r *actors.Request) {
	ctx.SetStatusCode(r.Status)
	if r.Problem {
		ctx.SetContentType(problem.ContentType)
	} else {
		ctx.SetContentType("application/json")
	}
	h := &ctx.Response.Header
	switch r.Idempotency {
	case actors.IdemMiss:
		h.Set("X-Idempotency", "MISS")
	case actors.IdemHit:
		h.Set("X-Idempotency", "HIT")
		h.Set("Idempotent-Replayed", "true")
	}
	if p := s.sys.RateLimitPolicy(r.Op); p != "" {
		h.Set("RateLimit-Policy", p)
	}
	if r.NLimits > 0 {
		var buf [160]byte
		h.SetBytesV("RateLimit", appendRateLimit(buf[:0], r))
	}
	if r.Limited >= 0 {
		var buf [20]byte
		h.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], int64(r.Limits[r.Limited].Decision.RetryAfter), 10))
	}
	ctx.SetBody(r.Body)
}

// appendRateLimit writes the RateLimit field: one item per policy decided.
func appendRateLimit(dst []byte, r *actors.Request) []byte {
	for i := 0; i < r.NLimits; i++ {
		l := &r.Limits[i]
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, '"')
		dst = append(dst, l.Policy.Name...)
		dst = append(dst, `";r=`...)
		dst = strconv.AppendInt(dst, int64(l.Decision.Remaining), 10)
		dst = append(dst, ";t="...)
		dst = strconv.AppendInt(dst, int64(l.Decision.Reset), 10)
	}
	return dst
}

func badRequest(ctx *fasthttp.RequestCtx, slug string, err error) {
	detail := err.Error()
	var ie *input.Error
	if errors.As(err, &ie) {
		detail = ie.Detail
		if ie.Field != "" {
			detail = "field " + strconv.Quote(ie.Field) + ": " + detail
		}
	}
	writeProblem(ctx, 400, slug, "Bad Request", detail)
}

// isJSON accepts application/json with optional parameters, any case.
func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	return len(ct) == len("application/json") && bytes.EqualFold(ct, []byte("application/json"))
}

// clientIP is the rate-limit subject: the socket peer, or the rightmost
// untrusted X-Forwarded-For hop when the peer is a trusted proxy. IPv6
// addresses count per /64, the smallest network one client usually holds,
// so rotating addresses inside it buys no fresh buckets.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP())
	ip = ip.Unmap()
	if s.trustProxies {
		ip = input.ClientIP(ip, ctx.Request.Header.Peek("X-Forwarded-For"), s.cfg.TrustedProxies.Contains)
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip
}

func (s *Server) settlement(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	if err := input.ID([]byte(id)); err != nil {
		badRequest(ctx, "invalid-settlement-id", err)
		return
	}
	st, err := s.sys.Settlement(id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		writeProblem(ctx, 404, "settlement-not-found", "Not Found", "no settlement with this id")
		return
	case err != nil:
		s.cfg.Logger.Error("read settlement", "id", id, "err", err)
		writeProblem(ctx, 503, "storage-unavailable", "Service Unavailable", "storage is temporarily unavailable")
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(AppendSettlement(nil, st))
}

// AppendSettlement renders a settlement as the API shows it.
func AppendSettlement(b []byte, st *persistence.Settlement) []byte {
	b = append(b, '{')
	b = jsonw.AppendStrings(b, "id", st.ID, "kind", st.Kind, "wallet", st.Wallet, "status", st.Status)
	b = jsonw.AppendField(b, "attempts")
	b = strconv.AppendInt(b, int64(st.Attempts), 10)
	b = jsonw.AppendField(b, "nextAttemptAt")
	if st.NextAttemptAt != nil {
		b = jsonw.AppendTime(b, *st.NextAttemptAt)
	} else {
		b = append(b, "null"...)
	}
	b = jsonw.AppendField(b, "lastError")
	if st.LastError != "" {
		b = jsonw.AppendString(b, st.LastError)
	} else {
		b = append(b, "null"...)
	}
	b = jsonw.AppendField(b, "createdAt")
	b = jsonw.AppendTime(b, st.CreatedAt)
	b = jsonw.AppendField(b, "updatedAt")
	b = jsonw.AppendTime(b, st.UpdatedAt)
	return append(b, '}')
}

func (s *Server) publicKey(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	b := append(ctx.Response.Body()[:0], `{"algorithm":"ed25519","publicKey":`...)
	b = jsonw.AppendString(b, s.sys.PublicKeyBase64())
	ctx.SetBody(append(b, '}'))
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if !s.cfg.Alive() {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(`{"status":"broken","detail":"storage failed; restart required"}`)
		return
	}
	ctx.SetBodyString(`{"status":"ok"}`)
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if !s.Ready() {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(`{"status":"unavailable"}`)
		return
	}
	ctx.SetBodyString(`{"status":"ready"}`)
}
