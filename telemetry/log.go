package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
)

// NewLogger returns a JSON logger at level. As a last line of defence any
// attribute whose key names a secret is redacted (see Redact), so a config
// dump or a careless log line cannot leak one.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if isSecret(a.Key) && !(a.Value.Kind() == slog.KindString && a.Value.String() == "") {
				a.Value = slog.StringValue(redacted)
			}
			return a
		},
	}))
}

const redacted = "***"

// Redact returns value, or "***" when name looks like a secret: it contains
// TOKEN, SECRET, KEY or PASSWORD in any case. A KEY whose name says PUBLIC
// (publicKey, claimPublicKey) is exempt: a public key is meant to be
// published, and operators need it in the logs to verify claim tickets.
// PRIVATE or SIGNING next to it, or TOKEN, SECRET or PASSWORD anywhere in
// the name, still redact. An empty value stays empty, so the log still
// shows that a secret is unset (and the feature behind it off).
func Redact(name, value string) string {
	if value != "" && isSecret(name) {
		return redacted
	}
	return value
}

func isSecret(name string) bool {
	n := strings.ToUpper(name)
	for _, s := range [...]string{"TOKEN", "SECRET", "PASSWORD"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	if !strings.Contains(n, "KEY") {
		return false
	}
	public := strings.Contains(n, "PUBLIC") && !strings.Contains(n, "PRIVATE") && !strings.Contains(n, "SIGNING")
	return !public
}

// ActorLoggerFactory routes protoactor-go's logging into l, for
// actor.WithLoggerFactory. Its Info chatter (every system start, every
// stopped actor) is dropped: only Warn and above get through.
func ActorLoggerFactory(l *slog.Logger) func(*actor.ActorSystem) *slog.Logger {
	return func(system *actor.ActorSystem) *slog.Logger {
		return slog.New(minLevel{l.Handler(), slog.LevelWarn}).With("component", "protoactor", "system", system.ID)
	}
}

// minLevel is a handler that drops records below min before h sees them.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler { return minLevel{m.h.WithAttrs(as), m.min} }

func (m minLevel) WithGroup(name string) slog.Handler { return minLevel{m.h.WithGroup(name), m.min} }
