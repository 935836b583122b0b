package persistence

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

type countWaiter struct {
	mu   sync.Mutex
	errs []error
	wg   *sync.WaitGroup
}

func (w *countWaiter) Committed(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
	w.wg.Done()
}

func TestGroupCommitMakesEveryBatchDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	w := &countWaiter{wg: &wg}
	wg.Add(n)
	for i := range n {
		go func() {
			b := s.DB().NewBatch()
			_ = b.Set(fmt.Appendf(nil, "k/%04d", i), []byte("v"), nil)
			s.Submit(b, w)
		}()
	}
	wg.Wait()
	for _, err := range w.errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: every batch is there.
	s, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := 0
	if err := s.Scan([]byte("k/"), func(_, _ []byte) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("%d keys after reopen, want %d", got, n)
	}
}

func TestSubmitAfterCloseFails(t *testing.T) {
	s, err := Open(Config{Dir: "db", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	b := s.DB().NewBatch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := s.Commit(b); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	if _, err := s.Get(nil, KeyFormat); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

func TestOpenRefusesForeignOrNewerStores(t *testing.T) {
	fs := vfs.NewMem()
	// A Pebble directory with data but no format key is not ours.
	db, err := pebble.Open("foreign", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set([]byte("x"), []byte("y"), pebble.Sync)
	_ = db.Close()
	if _, err := Open(Config{Dir: "foreign", FS: fs}); !errors.Is(err, ErrFormat) {
		t.Fatalf("foreign store: %v", err)
	}
	// A store of another format version is refused, not misread.
	db, err = pebble.Open("newer", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set(KeyFormat, []byte("2"), pebble.Sync)
	_ = db.Close()
	if _, err := Open(Config{Dir: "newer", FS: fs}); !errors.Is(err, ErrFormat) {
		t.Fatalf("newer store: %v", err)
	}
}

func TestWalletRangesAreContiguous(t *testing.T) {
	w := []byte("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
	prefix := AppendWalletPrefix(nil, w)
	shard := AppendShardPrefix(nil, Shard(w))
	for _, k := range [][]byte{
		AppendWalletKey(nil, w, TagBuckets),
		AppendWalletKey(nil, w, TagClaim, []byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
		AppendIdempotencyKey(nil, w, "register", []byte("k")),
		AppendWalletKey(nil, w, TagSettlement, []byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
	} {
		if string(k[:len(prefix)]) != string(prefix) || string(k[:len(shard)]) != string(shard) {
			t.Errorf("%q is outside the wallet range %q / shard range %q", k, prefix, shard)
		}
	}
}

func TestIdempotencyRecordRoundTrip(t *testing.T) {
	in := Idempotency{ExpiresAt: 1234567890123, Status: 201, Problem: true, Body: []byte(`{"a":1}`)}
	in.Fingerprint[0], in.Fingerprint[31] = 7, 9
	var out Idempotency
	if err := DecodeIdempotency(AppendIdempotency(nil, &in), &out); err != nil {
		t.Fatal(err)
	}
	if out.ExpiresAt != in.ExpiresAt || out.Fingerprint != in.Fingerprint || out.Status != 201 || !out.Problem || string(out.Body) != string(in.Body) {
		t.Fatalf("round trip: %+v", out)
	}
	if err := DecodeIdempotency([]byte{1, 2, 3}, &out); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short record: %v", err)
	}
}
