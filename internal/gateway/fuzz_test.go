package gateway_test

import (
	"bufio"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// FuzzRequest sends whole requests, written byte for byte (so fields may
// carry CR/LF and smuggle headers), to the real service: the transport's own
// fasthttp.Server with its limits, the router, the actors and a real Pebble,
// over fasthttp's in-memory listener. Whatever arrives, the answer is never a
// 5xx and nothing panics; a connection the server closes without answering
// (after a malformed request) is fine.
func FuzzRequest(f *testing.F) {
	w := "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
	f.Add("POST", "/api/register", "application/json", "k1", "", []byte(`{"wallet":"`+w+`"}`))
	f.Add("POST", "/api/claim/prepare", "application/json", "", "203.0.113.1", []byte(`{"wallet":"`+w+`","amount":"100"}`))
	f.Add("POST", "/api/claim/record", "application/json", `"sf"`, "garbage", []byte(`{"wallet":"`+w+`","claimId":"01ARZ3NDEKTSV4RRFFQ69G5FAV","txHash":"0x`+
		"1111111111111111111111111111111111111111111111111111111111111111"+`"}`))
	f.Add("GET", "/api/settlements/01ARZ3NDEKTSV4RRFFQ69G5FAV", "", "", "", []byte(nil))
	f.Add("GET", "/readyz", "", "", "", []byte(nil))
	f.Add("BREW", "/../../etc/passwd", "text/plain", "\x00", "1.2.3.4, ::1", []byte("{"))

	var cfg gateway.Config
	cfg.Store.Dir = f.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.Transport.ReadTimeout = time.Second
	cfg.Transport.MaxBodyBytes = 4 << 10
	cfg.Actors.RegisterPerHourIP = 1 << 30
	cfg.Actors.RegisterPerDayWallet = 1 << 30
	cfg.Actors.ClaimPerHour = 1 << 30
	g, err := gateway.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = g.Serve(ln) }()
	f.Cleanup(func() {
		_ = g.Shutdown(f.Context())
		_ = ln.Close()
	})

	f.Fuzz(func(t *testing.T, method, path, ctype, key, xff string, body []byte) {
		raw := method + " " + path + " HTTP/1.1\r\nHost: sge\r\n"
		for _, h := range [][2]string{{"Content-Type", ctype}, {"Idempotency-Key", key}, {"X-Forwarded-For", xff}} {
			if h[1] != "" {
				raw += h[0] + ": " + h[1] + "\r\n"
			}
		}
		raw += "Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + string(body)

		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _, _ = io.WriteString(c, raw) }()
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			return // closed without an answer
		}
		if resp.StatusCode() >= 500 {
			t.Fatalf("%d for %q:\n%s", resp.StatusCode(), raw, resp.Body())
		}
	})
}
