package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
)

// dial opens a raw TCP connection to the service, for clients no
// well-behaved HTTP library would be.
func dial(t *testing.T, e *sgetest.Env) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readResponse(t *testing.T, c net.Conn, within time.Duration) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", within, err)
	}
	return resp
}

// A body declared larger than MAX_BODY_BYTES is refused from its
// Content-Length alone: 413 arrives while the client has sent almost none of
// the 10 MB it announced.
func TestOversizedBodyRefusedWithoutReadingIt(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.ReadTimeout = 30 * time.Second })
	c := dial(t, e)
	start := time.Now()
	_, _ = io.WriteString(c, "POST /api/register HTTP/1.1\r\nHost: sge\r\nContent-Type: application/json\r\n"+
		"Content-Length: 10485760\r\n\r\n{\"wallet\":\"0x")
	resp := readResponse(t, c, 5*time.Second)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("413 took %s", d)
	}
}

// Headers beyond the read buffer (8 KiB) get 431 with a problem body.
func TestOversizedHeadersRefused(t *testing.T) {
	e := sgetest.Start(t, nil)
	c := dial(t, e)
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sge\r\nX-Junk: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	resp := readResponse(t, c, 5*time.Second)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if (resp.StatusCode != 431 && resp.StatusCode != 400) || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// A client sending one byte at a time cannot hold a connection: ReadTimeout
// bounds the whole request, not the gap between bytes.
func TestSlowClientCutOffByReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.ReadTimeout = readTimeout })
	c := dial(t, e)
	req := "POST /api/register HTTP/1.1\r\nHost: sge\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n" +
		strings.Repeat(" ", 60)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		// Whatever the server sends (a 408 or nothing), the connection ends.
		_, _ = io.Copy(io.Discard, c)
		closed <- time.Since(start)
	}()
	// A byte every 50ms: the 150-byte request would take 7.5s.
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			break
		}
		select {
		case d := <-closed:
			// The cut comes after ReadTimeout, and well before the request
			// could have finished; the slack covers scheduling on a busy host.
			if d < readTimeout*9/10 || d > readTimeout+2*time.Second {
				t.Fatalf("connection closed after %s, ReadTimeout is %s", d, readTimeout)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the slow client sent its whole request over %s without being cut off", time.Since(start))
}

// Beyond Concurrency connections fasthttp answers 503 and closes; the
// service keeps serving once the flood ends.
func TestConnectionFloodDegradesToErrors(t *testing.T) {
	const limit = 8
	e := sgetest.Start(t, func(c *gateway.Config) { c.Transport.Concurrency = limit })
	var conns []net.Conn
	for range 10 * limit {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
		if err != nil {
			continue // refusing connections is an acceptable degradation too
		}
		conns = append(conns, c)
	}
	refused := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		var ne net.Error
		switch {
		case err == nil && resp.StatusCode == 503:
			refused++
		case err == nil:
			t.Fatalf("an idle connection got %d", resp.StatusCode)
		case errors.As(err, &ne) && ne.Timeout():
			// held by a worker, waiting for a request
		}
	}
	if refused < len(conns)-limit {
		t.Fatalf("%d of %d connections refused with 503, want at least %d", refused, len(conns), len(conns)-limit)
	}
	for _, c := range conns {
		c.Close()
	}
	sgetest.Eventually(t, 10*time.Second, "service back after the flood", func() bool {
		resp, err := http.Get(e.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
