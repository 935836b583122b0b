// Package ids issues the service's opaque, time-ordered identifiers (ULIDs).
package ids

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Len is the length of an ID in characters.
const Len = ulid.EncodedSize

var (
	mu      sync.Mutex
	entropy = ulid.Monotonic(rand.Reader, 0)
	// next is filled in place under mu: a local ULID handed to the entropy
	// source would move to the heap, an allocation per ID.
	next ulid.ULID
)

// Append appends a new ULID for time t. IDs from one process are strictly
// increasing, so they sort by creation.
func Append(dst []byte, t time.Time) []byte {
	var buf [Len]byte
	ms := ulid.Timestamp(t)
	mu.Lock()
	err := next.SetTime(ms)
	if err == nil {
		err = entropy.MonotonicRead(ms, next[6:])
	}
	if err == nil {
		_ = next.MarshalTextTo(buf[:])
	}
	mu.Unlock()
	if err != nil {
		// Only on entropy exhaustion within one millisecond; fall back to a
		// fresh random ID, which is still unique and still ordered by time.
		id := ulid.MustNew(ms, rand.Reader)
		_ = id.MarshalTextTo(buf[:])
	}
	return append(dst, buf[:]...)
}

// New returns a new ID for time t as a string.
func New(t time.Time) string {
	var b [Len]byte
	return string(Append(b[:0], t))
}
