package ids

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestIDsAreULIDsAndStrictlyIncreasing(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	prev := ""
	// Many within one millisecond (the monotonic case), then a later one.
	for i := range 10001 {
		at := now
		if i == 10000 {
			at = now.Add(time.Millisecond)
		}
		id := New(at)
		u, err := ulid.ParseStrict(id)
		if err != nil || len(id) != Len {
			t.Fatalf("%q: not a ULID of %d characters: %v", id, Len, err)
		}
		if got := ulid.Time(u.Time()); !got.Equal(at) {
			t.Fatalf("%q carries time %v, want %v", id, got, at)
		}
		if id <= prev {
			t.Fatalf("%q after %q: not increasing", id, prev)
		}
		prev = id
	}
	if got := string(Append([]byte("x/"), now)); len(got) != 2+Len || got[:2] != "x/" {
		t.Fatalf("Append did not keep the prefix: %q", got)
	}
}
