package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
	"github.com/valyala/fasthttp"
)

const durableTestKey = "0123456789abcdef0123456789abcdef"

// The durable baseline must write what sged writes for a registration, or
// it is not the ceiling of sged's durable MISS. Both write one registration
// of the same wallet and key; the keys must have the same shapes, the values
// about the same sizes (sged's hold timestamps whose length varies).
func TestDurableWritesWhatARegistrationWrites(t *testing.T) {
	wallet := sgetest.Wallet()
	// The settlement's call waits until the shapes are read, so its record
	// is read as the registration wrote it.
	release := make(chan struct{})
	env := sgetest.Start(t, func(c *gateway.Config) { c.Settlements.Backend = heldBackend(release) })
	defer close(release)
	if r := env.Post(t, "/api/register", durableTestKey, `{"wallet":"`+wallet+`"}`); r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	want := registrationShapes(t, env.Store, wallet)

	s := openTestStore(t)
	ctx := durableRequest(`{"wallet":"`+wallet+`"}`, durableTestKey)
	durableHandler(s)(ctx)
	if ctx.Response.StatusCode() != http.StatusCreated || !bytes.Equal(ctx.Response.Body(), baselineAnswer) {
		t.Fatalf("durable baseline answered %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	got := registrationShapes(t, s, wallet)

	if len(got) != len(want) || len(want) != 7 {
		t.Fatalf("durable baseline wrote %d keys, sged %d:\n%v\n%v", len(got), len(want), keysOf(got), keysOf(want))
	}
	for k, n := range want {
		m, ok := got[k]
		if !ok {
			t.Fatalf("durable baseline does not write %q; it writes %v", k, keysOf(got))
		}
		if d := m - n; d < -16 || d > 16 {
			t.Errorf("%q: durable baseline writes %d B, sged %d B", k, m, n)
		}
	}
}

// A request without a wallet or a key is refused and stores nothing.
func TestDurableRefusesIncompleteRequests(t *testing.T) {
	s := openTestStore(t)
	for _, c := range []struct{ body, key string }{
		{`{"wallet":""}`, durableTestKey},
		{`{}`, durableTestKey},
		{`{"wallet":"` + sgetest.Wallet() + `"}`, ""},
	} {
		ctx := durableRequest(c.body, c.key)
		durableHandler(s)(ctx)
		if ctx.Response.StatusCode() != http.StatusBadRequest {
			t.Errorf("%s key %q: status %d", c.body, c.key, ctx.Response.StatusCode())
		}
	}
	if n := len(registrationShapes(t, s, "")); n != 0 {
		t.Fatalf("refused requests stored %d keys", n)
	}
}

// The durable scenario end to end: the baseline child with its own store,
// every request answered only after its commit.
func TestDurableEndToEnd(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1", "durable")
	cfg.Max = 60
	rep := runOK(t, cfg)
	if rep.Failed() || rep.Requests != 60 || rep.Status["201"] != 60 || rep.Errors != 0 {
		t.Fatalf("report: %+v", rep)
	}
}

// With -wal-dir the durable store keeps its WAL in a fresh directory under
// it while the run goes, and leaves nothing behind. The run is stopped as
// soon as the WAL shows there, so it may have answered nothing: what it
// answers is TestDurableEndToEnd's concern.
func TestDurableWALDir(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1", "durable")
	cfg.WALDir = t.TempDir()
	cfg.Max, cfg.Duration = 0, time.Minute
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, cfg)
		done <- err
	}()
	for seen := false; !seen; {
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before its WAL showed under -wal-dir", err)
		case <-time.After(10 * time.Millisecond):
		}
		logs, _ := filepath.Glob(filepath.Join(cfg.WALDir, "sgeload-durable-wal-*", "*.log"))
		seen = len(logs) > 0
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(cfg.WALDir); len(left) != 0 {
		t.Errorf("%d entries left under -wal-dir", len(left))
	}
}

func openTestStore(t *testing.T) *persistence.Store {
	t.Helper()
	s, err := persistence.Open(persistence.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func durableRequest(body, key string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetBodyString(body)
	if key != "" {
		ctx.Request.Header.Set("Idempotency-Key", key)
	}
	return &ctx
}

// registrationShapes maps the shape of every key s holds for a registration
// (the wallet's range and the global indexes, apart from meta/ and the IP
// buckets) to the length of its value. In a shape, the wallet reads W, the
// idempotency key K, the registration and settlement ids R and S, and an
// index's 8-byte time T.
func registrationShapes(t *testing.T, s *persistence.Store, wallet string) map[string]int {
	t.Helper()
	type kv struct{ k, v string }
	var all []kv
	it, err := s.DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := string(it.Key())
		if strings.HasPrefix(k, "meta/") || strings.HasPrefix(k, string(persistence.PrefixIP)) {
			continue
		}
		all = append(all, kv{k, string(it.Value())})
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	// The ids are what follows r/ and s/ in the wallet's range.
	var reg, set string
	for _, e := range all {
		if i := strings.Index(e.k, "/r/"); i >= 0 && strings.HasPrefix(e.k, "w/") {
			reg = e.k[i+3:]
		}
		if i := strings.Index(e.k, "/s/"); i >= 0 && strings.HasPrefix(e.k, "w/") {
			set = e.k[i+3:]
		}
	}
	names := []string{durableTestKey, "K"}
	for _, n := range [][2]string{{wallet, "W"}, {reg, "R"}, {set, "S"}} {
		if n[0] != "" { // an empty old string would match everywhere
			names = append(names, n[0], n[1])
		}
	}
	r := strings.NewReplacer(names...)
	shapes := make(map[string]int, len(all))
	for _, e := range all {
		k := e.k
		for _, p := range [][]byte{persistence.PrefixDue, persistence.PrefixExpiry} {
			if strings.HasPrefix(k, string(p)) && len(k) >= len(p)+8 {
				k = string(p) + "T" + k[len(p)+8:]
			}
		}
		shapes[r.Replace(k)] = len(e.v)
	}
	return shapes
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(out)
	return out
}

// heldBackend is a settlement backend whose calls succeed once release closes.
type heldBackend chan struct{}

func (h heldBackend) Settle(ctx context.Context, _ *persistence.Settlement) error {
	select {
	case <-h:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
