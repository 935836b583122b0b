package transport

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strconv"

	"github.com/fasthttp/router"
	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/jsonw"
	"github.com/sgeplatform/sge/persistence"
	"github.com/valyala/fasthttp"
)

// Admin is what the /admin routes operate on: the dead-letter store
// (actors.Supervisor implements it).
type Admin interface {
	DeadLetters(limit int, after string) ([]*persistence.Settlement, string, error)
	Replay(id string) (*persistence.Settlement, error)
	ReplayAll() (int, error)
	DeleteDeadLetter(id string) error
}

const (
	routeDeadLetters      = "/admin/dead-letters"
	routeDeadLetter       = "/admin/dead-letters/{id}"
	routeReplay           = "/admin/dead-letters/{id}/replay"
	routeReplayAll        = "/admin/dead-letters/replay"
	defaultDeadLetterPage = 100
)

// adminRoutes registers the admin API. It exists only when ADMIN_TOKEN is
// set; otherwise /admin/... falls through to the 404 of unknown routes.
func (s *Server) adminRoutes(r *router.Router) {
	sum := sha256.Sum256([]byte(s.cfg.AdminToken))
	auth := func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			token, ok := bearer(ctx.Request.Header.Peek("Authorization"))
			if !ok {
				writeProblem(ctx, 401, "unauthorized", "Unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>")
				ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="sge-admin"`)
				return
			}
			// Compare digests so neither the content nor the length of the
			// token leaks through timing.
			got := sha256.Sum256(token)
			if subtle.ConstantTimeCompare(got[:], sum[:]) != 1 {
				writeProblem(ctx, 403, "forbidden", "Forbidden", "this token is not allowed here")
				return
			}
			h(ctx)
		}
	}
	r.GET(routeDeadLetters, s.observe(fasthttp.MethodGet, routeDeadLetters, auth(s.listDeadLetters)))
	r.POST(routeReplayAll, s.observe(fasthttp.MethodPost, routeReplayAll, auth(s.replayAll)))
	r.POST(routeReplay, s.observe(fasthttp.MethodPost, routeReplay, auth(s.replay)))
	r.DELETE(routeDeadLetter, s.observe(fasthttp.MethodDelete, routeDeadLetter, auth(s.deleteDeadLetter)))
}

// bearer extracts the token of "Bearer <token>" (scheme case-insensitive).
func bearer(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	t := bytes.TrimSpace(h[len(scheme):])
	return t, len(t) > 0
}

func (s *Server) listDeadLetters(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit := defaultDeadLetterPage
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > actors.MaxDeadLetterPage {
			writeProblem(ctx, 400, "invalid-limit", "Bad Request", "limit must be an integer from 1 to "+strconv.Itoa(actors.MaxDeadLetterPage))
			return
		}
		limit = n
	}
	after := args.Peek("after")
	if len(after) > 0 {
		if err := input.ID(after); err != nil {
			badRequest(ctx, "invalid-cursor", err)
			return
		}
	}
	list, next, err := s.cfg.Admin.DeadLetters(limit, string(after))
	if err != nil {
		s.adminStorageError(ctx, "list dead letters", err)
		return
	}
	b := append(ctx.Response.Body()[:0], `{"items":[`...)
	for i, st := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendSettlement(b, st)
	}
	b = append(b, `],"next":`...)
	if next != "" {
		b = jsonw.AppendString(b, next)
	} else {
		b = append(b, "null"...)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}'))
}

func (s *Server) replay(ctx *fasthttp.RequestCtx) {
	id, ok := s.adminID(ctx)
	if !ok {
		return
	}
	st, err := s.cfg.Admin.Replay(id)
	if s.adminError(ctx, "replay dead letter", err) {
		return
	}
	ctx.SetStatusCode(202)
	ctx.SetContentType("application/json")
	ctx.SetBody(AppendSettlement(nil, st))
}

func (s *Server) replayAll(ctx *fasthttp.RequestCtx) {
	n, err := s.cfg.Admin.ReplayAll()
	if err != nil {
		s.adminStorageError(ctx, "replay all dead letters", err)
		return
	}
	ctx.SetStatusCode(202)
	ctx.SetContentType("application/json")
	ctx.SetBody(strconv.AppendInt(append(ctx.Response.Body()[:0], `{"replayed":`...), int64(n), 10))
	ctx.Response.AppendBodyString("}")
}

func (s *Server) deleteDeadLetter(ctx *fasthttp.RequestCtx) {
	id, ok := s.adminID(ctx)
	if !ok {
		return
	}
	if s.adminError(ctx, "delete dead letter", s.cfg.Admin.DeleteDeadLetter(id)) {
		return
	}
	ctx.SetStatusCode(204)
}

func (s *Server) adminID(ctx *fasthttp.RequestCtx) (string, bool) {
	id, _ := ctx.UserValue("id").(string)
	if err := input.ID([]byte(id)); err != nil {
		badRequest(ctx, "invalid-settlement-id", err)
		return "", false
	}
	return id, true
}

// adminError writes the problem for err, if any, and reports whether it did.
func (s *Server) adminError(ctx *fasthttp.RequestCtx, op string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, persistence.ErrNotFound):
		writeProblem(ctx, 404, "dead-letter-not-found", "Not Found", "no dead letter with this id")
	case errors.Is(err, actors.ErrNotDead):
		writeProblem(ctx, 409, "not-dead", "Conflict", "this settlement is not dead")
	default:
		s.adminStorageError(ctx, op, err)
	}
	return true
}

func (s *Server) adminStorageError(ctx *fasthttp.RequestCtx, op string, err error) {
	s.cfg.Logger.Error(op, "err", err)
	writeProblem(ctx, 503, "storage-unavailable", "Service Unavailable", "storage is temporarily unavailable")
}
