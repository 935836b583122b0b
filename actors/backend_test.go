package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/persistence"
)

// The real backend's answers sort into success, permanent failure (4xx but
// 408 and 429: dead at once) and failures worth a retry (the rest, network
// errors, timeouts); a permanent one still says what the backend answered.
func TestHTTPBackendClassifiesAnswers(t *testing.T) {
	var status atomic.Int64
	var got atomic.Pointer[http.Request]
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r)
		body.Store(&b)
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, "  the reason\n")
	}))
	defer srv.Close()
	backend := NewHTTPBackend(srv.URL, 10*time.Second)
	defer backend.CloseIdleConnections()
	st := &persistence.Settlement{ID: "01TESTSETTLEMENT", Kind: "registration", Wallet: "0xabc", Status: "running"}

	for _, tc := range []struct {
		status        int
		ok, permanent bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{400, false, true}, {404, false, true}, {409, false, true}, {422, false, true},
		{408, false, false}, {429, false, false}, {500, false, false}, {502, false, false}, {503, false, false},
	} {
		status.Store(int64(tc.status))
		err := backend.Settle(context.Background(), st)
		var perm *PermanentError
		if (err == nil) != tc.ok || errors.As(err, &perm) != tc.permanent {
			t.Errorf("%d: err %v, want ok %v, permanent %v", tc.status, err, tc.ok, tc.permanent)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("answered %d", tc.status)) {
			t.Errorf("%d: %v does not say what the backend answered", tc.status, err)
		}
		if perm != nil {
			inner := errors.Unwrap(perm)
			if inner == nil || !strings.HasSuffix(inner.Error(), "the reason") || perm.Error() != "permanent: "+inner.Error() {
				t.Errorf("%d: permanent error %q wraps %v", tc.status, perm, inner)
			}
		}
	}
	r := got.Load()
	var sent persistence.Settlement
	if err := json.Unmarshal(*body.Load(), &sent); err != nil || sent.ID != st.ID || sent.Wallet != st.Wallet {
		t.Fatalf("body %s: %v", *body.Load(), err)
	}
	if r.Method != http.MethodPost || r.Header.Get("Idempotency-Key") != st.ID || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request: %s, Idempotency-Key %q, Content-Type %q", r.Method, r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type"))
	}
}

// No answer in time, and no server at all, are failures worth a retry.
func TestHTTPBackendRetriesTimeoutsAndNetworkErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // answers only once the client has given up
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handler
	st := &persistence.Settlement{ID: "01TESTSETTLEMENT"}
	var perm *PermanentError

	slow := NewHTTPBackend(srv.URL, 50*time.Millisecond)
	if err := slow.Settle(context.Background(), st); err == nil || errors.As(err, &perm) {
		t.Fatalf("no answer: %v, want a failure worth a retry", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	if err := NewHTTPBackend(url, 10*time.Second).Settle(context.Background(), st); err == nil || errors.As(err, &perm) {
		t.Fatalf("nothing listening: %v, want a failure worth a retry", err)
	}
}
