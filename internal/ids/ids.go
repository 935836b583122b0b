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
)

// Append appends a new ULID for time t. IDs from one process are strictly
// increasing, so they sort by creation.
func Append(dst []byte, t time.Time) []byte {
	mu.Lock()
	id, err := ulid.New(ulid.Timestamp(t), entropy)
	mu.Unlock()
	if err != nil {
		// Only on entropy exhaustion within one millisecond; fall back to a
		// fresh random ID, which is still unique and still ordered by time.
		id = ulid.MustNew(ulid.Timestamp(t), rand.Reader)
	}
	var buf [ulid.EncodedSize]byte
	_ = id.MarshalTextTo(buf[:])
	return append(dst, buf[:]...)
}

// New returns a new ID for time t as a string.
func New(t time.Time) string { return string(Append(nil, t)) }
