package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/persistence"
)

// 6. sged refuses to start with a settlement backend that does not match MODE.
func TestSettlementModeRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"mock with URL", map[string]string{"SETTLEMENT_URL": "http://127.0.0.1:1/settle"}, "SETTLEMENT_URL is set but MODE=mock"},
		{"real without URL", map[string]string{"MODE": "real"}, "MODE=real needs SETTLEMENT_URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c.env["DATA_DIR"] = t.TempDir()
			code := run(context.Background(), nil, func(k string) string { return c.env[k] }, &stderr)
			if code != exitConfig || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, exitConfig, c.want, stderr.String())
			}
		})
	}
}

// 4. kill -9 while settlements are mid-retry. The real backend fails the
// first calls of every key and records every Idempotency-Key and body it
// sees. After a restart every settlement finishes or dead-letters, attempt
// counts go on from where they were, and no settlement was ever sent under
// another key than its own id.
func TestCrashMidRetryResumesSettlements(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sged as a child process")
	}
	const failFirst = 3
	var (
		mu       sync.Mutex
		perKey   = map[string]int{}
		mismatch []string
		calls    atomic.Int64
	)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var st persistence.Settlement
		_ = json.Unmarshal(body, &st)
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		perKey[key]++
		n := perKey[key]
		if st.ID != key || key == "" {
			mismatch = append(mismatch, fmt.Sprintf("key %q body id %q", key, st.ID))
		}
		mu.Unlock()
		calls.Add(1)
		if n <= failFirst {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	}))
	defer backend.Close()

	dir := t.TempDir()
	env := []string{"DATA_DIR=" + dir, "ADDR=127.0.0.1:0", "RL_REGISTER_PER_HOUR=1000000",
		"MODE=real", "SETTLEMENT_URL=" + backend.URL, "SETTLEMENT_BACKOFF=40ms", "SETTLEMENT_MAX_ATTEMPTS=6",
		"SWEEP_INTERVAL=200ms"}
	c := startChild(t, env)
	client := &http.Client{Timeout: 10 * time.Second}
	var ids []string
	for i := range 40 {
		status, id, _, err := register(context.Background(), client, c.url(), fmt.Sprintf("k%d", i), sgetest.Wallet())
		if err != nil || status != 201 {
			t.Fatalf("register: %d %v", status, err)
		}
		ids = append(ids, id)
	}
	// Kill once every settlement has failed at least once and none can
	// have finished (each needs failFirst+1 calls).
	sgetest.Eventually(t, 30*time.Second, "first failures", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if perKey[id] < 1 {
				return false
			}
		}
		return true
	})
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited

	before := map[string]int{}
	store, err := persistence.Open(persistence.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		st := readSettlementT(t, store, id)
		before[id] = st.Attempts
	}
	store.Close()

	c = startChild(t, env)
	final := map[string]map[string]any{}
	sgetest.Eventually(t, 60*time.Second, "every settlement finished", func() bool {
		for _, id := range ids {
			if final[id] != nil {
				continue
			}
			resp, err := client.Get(c.url() + "/api/settlements/" + id)
			if err != nil {
				return false
			}
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if m["status"] == "succeeded" || m["status"] == "dead" {
				final[id] = m
			}
		}
		return len(final) == len(ids)
	})
	if code := c.terminate(t); code != 0 {
		t.Fatalf("graceful stop exited %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(mismatch) > 0 {
		t.Fatalf("keys that are not their settlement's id: %v", mismatch)
	}
	if len(perKey) != len(ids) {
		t.Fatalf("backend saw %d keys for %d settlements", len(perKey), len(ids))
	}
	for _, id := range ids {
		got := int(final[id]["attempts"].(float64))
		if got < before[id] || got != perKey[id] && got != perKey[id]+1 {
			// An attempt cut by the kill may or may not have reached the
			// backend; either way it counts, so attempts >= calls.
			t.Errorf("%s: %d attempts (was %d at the kill), backend saw %d calls", id, got, before[id], perKey[id])
		}
		if final[id]["status"] == "succeeded" && perKey[id] <= failFirst {
			t.Errorf("%s succeeded after %d calls", id, perKey[id])
		}
	}
	t.Logf("%d backend calls for %d settlements", calls.Load(), len(ids))
}

func readSettlementT(t *testing.T, store *persistence.Store, id string) persistence.Settlement {
	t.Helper()
	w, err := store.Get(nil, persistence.AppendSettlementLocator(nil, []byte(id)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := store.Get(nil, persistence.AppendWalletKey(nil, w, persistence.TagSettlement, []byte(id)))
	if err != nil {
		t.Fatal(err)
	}
	var st persistence.Settlement
	if err := json.Unmarshal(v, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
