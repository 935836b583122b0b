// Command sged is the SGE gateway server. It reads its configuration from
// flags and the environment, builds the service (internal/gateway) and runs
// it until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/telemetry"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // start-up or shutdown failed, e.g. an unreadable data dir
	exitConfig = 2 // invalid configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run starts the service and blocks until ctx is done or serving fails.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sged: invalid configuration:")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "  -", line)
		}
		return exitConfig
	}
	level, _ := parseLevel(cfg.logLevel)
	log := telemetry.NewLogger(stderr, level)
	log.Info("starting", cfg.effective...)
	cfg.Logger = log

	tp, stopTracing, err := telemetry.StartTracing(ctx, cfg.tracing)
	if err != nil {
		log.Error("cannot start tracing", "err", err)
		fmt.Fprintln(stderr, "sged: cannot start tracing:", err)
		return exitFailed
	}
	// After the gateway has stopped, so the spans of the last requests are
	// flushed too; bounded like the drain. Safe to call twice.
	flushTracing := func() {
		fctx, cancel := context.WithTimeout(context.Background(), cfg.Transport.ShutdownTimeout)
		defer cancel()
		if err := stopTracing(fctx); err != nil {
			log.Warn("tracing flush", "err", err)
		}
	}
	defer flushTracing()
	cfg.TracerProvider = tp

	g, err := gateway.New(cfg.Config)
	if err != nil {
		log.Error("cannot start", "err", err)
		fmt.Fprintln(stderr, "sged: cannot start:", err)
		return exitFailed
	}
	ln, err := g.Listen()
	if err != nil {
		log.Error("cannot listen", "err", err)
		_ = g.Shutdown(context.Background())
		return exitFailed
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(ln) }()
	attrs := []any{"addr", ln.Addr().String(), "claimPublicKey", g.System.PublicKeyBase64()}
	if a := g.MetricsAddr(); a != nil {
		attrs = append(attrs, "metricsAddr", a.String())
	}
	if cfg.pprofAddr != "" {
		pprofAddr, stopProfiles, err := serveProfiles(cfg.pprofAddr)
		if err != nil {
			log.Error("cannot serve profiles", "addr", cfg.pprofAddr, "err", err)
			_ = g.Shutdown(context.Background())
			return exitFailed
		}
		defer stopProfiles()
		attrs = append(attrs, "pprofAddr", pprofAddr.String())
	}
	log.Info("listening", attrs...)

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.Transport.ShutdownTimeout.String())
	case err := <-serveErr:
		log.Error("server stopped", "err", err)
		code = exitFailed
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Transport.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		code = exitFailed
	}
	flushTracing()
	log.Info("stopped", "code", code)
	return code
}

var errHelp = errors.New("help requested")

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// serveProfiles serves net/http/pprof on addr, for profiling a running
// server (go tool pprof http://addr/debug/pprof/profile), and returns the
// address it listens on (the port chosen for ":0").
func serveProfiles(addr string) (bound net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), func() { _ = srv.Close() }, nil
}
