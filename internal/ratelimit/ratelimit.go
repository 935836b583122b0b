// Package ratelimit implements the gateway's token buckets: a bucket holds
// quota tokens and refills quota/window continuously.
package ratelimit

import (
	"encoding/binary"
	"math"
	"time"
)

// Policy is a named quota per window, e.g. "register-ip": 5 per hour.
type Policy struct {
	Name   string
	Quota  int
	Window time.Duration
}

// Bucket is one subject's state. The zero Bucket is full: Last == 0 means
// "never used", so absent subjects need no entry.
type Bucket struct {
	Tokens float64
	// Last is unix nanoseconds of the last update.
	Last int64
}

// Decision is the outcome of a Take or Peek, ready for the RateLimit headers.
type Decision struct {
	Allowed bool
	// Remaining is whole tokens left after this request.
	Remaining int
	// Reset is seconds until the bucket is full again.
	Reset int
	// RetryAfter is seconds until one token is available (0 when allowed).
	RetryAfter int
}

func (p Policy) perNano() float64 { return float64(p.Quota) / float64(p.Window) }

// refill brings b up to now.
func (p Policy) refill(b *Bucket, now int64) {
	if b.Last == 0 {
		b.Tokens, b.Last = float64(p.Quota), now
		return
	}
	if now > b.Last {
		b.Tokens = math.Min(float64(p.Quota), b.Tokens+float64(now-b.Last)*p.perNano())
		b.Last = now
	}
}

func (p Policy) decide(b *Bucket, allowed bool) Decision {
	d := Decision{Allowed: allowed, Remaining: int(b.Tokens)}
	d.Reset = ceilSeconds((float64(p.Quota) - b.Tokens) / p.perNano())
	if !allowed {
		d.RetryAfter = max(1, ceilSeconds((1-b.Tokens)/p.perNano()))
	}
	return d
}

// Take spends one token if there is one.
func (p Policy) Take(b *Bucket, now int64) Decision {
	p.refill(b, now)
	if b.Tokens < 1 {
		return p.decide(b, false)
	}
	b.Tokens--
	return p.decide(b, true)
}

// Peek reports what Take would decide, without spending.
func (p Policy) Peek(b Bucket, now int64) Decision {
	p.refill(&b, now)
	return p.decide(&b, b.Tokens >= 1)
}

// Refund gives back a token spent on a request that then failed.
func (p Policy) Refund(b *Bucket, now int64) {
	p.refill(b, now)
	b.Tokens = math.Min(float64(p.Quota), b.Tokens+1)
}

// Full reports whether b has refilled completely by now, i.e. is
// indistinguishable from an absent bucket.
func (p Policy) Full(b Bucket, now int64) bool {
	p.refill(&b, now)
	return b.Tokens >= float64(p.Quota)
}

func ceilSeconds(nanos float64) int {
	if nanos <= 0 {
		return 0
	}
	// The small epsilon keeps float error (8640.0000001 s) from adding a second.
	return int(math.Ceil(nanos/float64(time.Second) - 1e-6))
}

// AppendBinary encodes b in 16 bytes.
func (b Bucket) AppendBinary(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(b.Tokens))
	return binary.BigEndian.AppendUint64(dst, uint64(b.Last))
}

// DecodeBucket decodes 16 bytes written by AppendBinary and returns the rest;
// ok is false when v is too short.
func DecodeBucket(v []byte) (b Bucket, rest []byte, ok bool) {
	if len(v) < 16 {
		return Bucket{}, v, false
	}
	b.Tokens = math.Float64frombits(binary.BigEndian.Uint64(v))
	b.Last = int64(binary.BigEndian.Uint64(v[8:]))
	if math.IsNaN(b.Tokens) || b.Tokens < 0 {
		b = Bucket{}
	}
	return b, v[16:], true
}
