package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestBucketRefillsContinuously(t *testing.T) {
	p := Policy{Name: "register-ip", Quota: 5, Window: time.Hour}
	var b Bucket
	now := time.Unix(1000, 0).UnixNano()
	for i := range 5 {
		d := p.Take(&b, now)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("take %d: %+v", i, d)
		}
	}
	d := p.Take(&b, now)
	if d.Allowed || d.RetryAfter != 720 || d.Reset != 3600 || d.Remaining != 0 {
		t.Fatalf("6th: %+v", d)
	}
	// One token is back after window/quota.
	if d := p.Take(&b, now+int64(720*time.Second)); !d.Allowed {
		t.Fatalf("after 720s: %+v", d)
	}
	if d := p.Peek(b, now+int64(720*time.Second)); d.Allowed {
		t.Fatalf("peek spent nothing but should see an empty bucket: %+v", d)
	}
	p.Refund(&b, now+int64(720*time.Second))
	if d := p.Peek(b, now+int64(720*time.Second)); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after refund: %+v", d)
	}
	if !p.Full(b, now+int64(10*time.Hour)) {
		t.Fatal("bucket not full after ten windows")
	}
}

func TestFirstTakeReportsFullQuotaReset(t *testing.T) {
	p := Policy{Name: "register-wallet", Quota: 10, Window: 24 * time.Hour}
	var b Bucket
	d := p.Take(&b, 1)
	if d.Remaining != 9 || d.Reset != 8640 {
		t.Fatalf("%+v, want r=9 t=8640", d)
	}
}

func TestBucketEncoding(t *testing.T) {
	in := Bucket{Tokens: 3.25, Last: 42}
	out, rest, ok := DecodeBucket(append(in.AppendBinary(nil), 'x'))
	if !ok || out != in || string(rest) != "x" {
		t.Fatalf("%+v %q %v", out, rest, ok)
	}
	if _, _, ok := DecodeBucket([]byte{1}); ok {
		t.Fatal("short value decoded")
	}
}

func TestLimiterStaysBounded(t *testing.T) {
	p := Policy{Name: "register-ip", Quota: 5, Window: time.Hour}
	l := NewLimiter(p, 640)
	now := time.Now().UnixNano()
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.Take(a, now).Allowed {
			t.Fatalf("fresh address %v limited", a)
		}
	}
	if n := l.Len(); n > 640 {
		t.Fatalf("%d entries, bound 640", n)
	}
	// Refilled buckets are the same as none and are swept.
	if n := l.Sweep(now + int64(2*time.Hour)); n != 0 {
		t.Fatalf("%d entries after sweep", n)
	}
}

func TestLimiterRefusedRequestsStoreNothing(t *testing.T) {
	l := NewLimiter(Policy{Name: "p", Quota: 1, Window: time.Hour}, 0)
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Now().UnixNano()
	l.Take(a, now)
	if l.Take(a, now).Allowed {
		t.Fatal("second take allowed")
	}
	l.Refund(a, now)
	if !l.Take(a, now).Allowed {
		t.Fatal("refunded token not available")
	}
}
