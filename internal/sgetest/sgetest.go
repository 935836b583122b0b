// Package sgetest starts the whole service in-process for tests and
// benchmarks: a real Pebble in a temporary directory and a real server on
// 127.0.0.1:0.
package sgetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/persistence"
)

// Env is one running service.
type Env struct {
	*gateway.Gateway
	URL    string
	Dir    string
	Client *http.Client
	cfg    gateway.Config
	done   chan error
	// stopped is set once the service was shut down through the Env.
	stopped bool
}

// Start runs the service on a fresh data directory. configure may adjust
// the configuration; the store directory and address are set already.
func Start(t testing.TB, configure func(*gateway.Config)) *Env {
	t.Helper()
	var cfg gateway.Config
	cfg.Store.Dir = t.TempDir()
	cfg.Transport.Addr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	if os.Getenv("SGE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if configure != nil {
		configure(&cfg)
	}
	return StartWith(t, cfg)
}

// StartWith runs the service with cfg exactly (e.g. on an existing data dir).
func StartWith(t testing.TB, cfg gateway.Config) *Env {
	t.Helper()
	cfg.Registry = nil // a fresh registry per run
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ln, err := g.Listen()
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e := &Env{
		Gateway: g,
		URL:     "http://" + ln.Addr().String(),
		Dir:     cfg.Store.Dir,
		Client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		cfg:     cfg,
		done:    make(chan error, 1),
	}
	go func() { e.done <- g.Serve(ln) }()
	t.Cleanup(func() { e.Stop(t) })
	return e
}

// Stop shuts the service down gracefully; safe to call twice.
func (e *Env) Stop(t testing.TB) {
	t.Helper()
	if e.stopped {
		return
	}
	if err := e.StopErr(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// StopErr shuts the service down and returns what Shutdown returned, for
// tests that expect it to fail; a later Stop is a no-op.
func (e *Env) StopErr() error {
	e.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.Shutdown(ctx)
	e.Client.CloseIdleConnections()
	return err
}

// Restart stops the service gracefully and starts it again on the same data
// directory and configuration.
func (e *Env) Restart(t testing.TB) *Env {
	t.Helper()
	e.Stop(t)
	return StartWith(t, e.cfg)
}

// Config returns the configuration the service was started with.
func (e *Env) Config() gateway.Config { return e.cfg }

// Response is an answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
	return m
}

// Do sends a request; headers are name, value pairs.
func (e *Env) Do(t testing.TB, method, path, body string, headers ...string) *Response {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Post sends a JSON POST with an Idempotency-Key (none when key is "").
func (e *Env) Post(t testing.TB, path, key, body string, headers ...string) *Response {
	t.Helper()
	if key != "" {
		headers = append(headers, "Idempotency-Key", key)
	}
	return e.Do(t, http.MethodPost, path, body, headers...)
}

// Settlements returns every settlement stored for wallet.
func (e *Env) Settlements(t testing.TB, wallet string) []persistence.Settlement {
	t.Helper()
	return Settlements(t, e.Store, wallet)
}

// Settlements reads every settlement stored for wallet in store.
func Settlements(t testing.TB, store *persistence.Store, wallet string) []persistence.Settlement {
	t.Helper()
	var out []persistence.Settlement
	prefix := persistence.AppendWalletKey(nil, []byte(wallet), persistence.TagSettlement)
	prefix = append(prefix, '/')
	err := store.Scan(prefix, func(_, v []byte) error {
		var st persistence.Settlement
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		out = append(out, st)
		return nil
	})
	if err != nil {
		t.Fatalf("scan settlements: %v", err)
	}
	return out
}

// LogBuffer is a goroutine-safe buffer to give a logger in tests.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Wallet returns a fresh random wallet address in lowercase.
func Wallet() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return "0x" + hex.EncodeToString(b[:])
}

// TxHash returns a fresh random transaction hash.
func TxHash() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "0x" + hex.EncodeToString(b[:])
}

// Eventually polls cond until it holds or the deadline passes; it is how
// tests wait for asynchronous effects without guessing with sleeps.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
