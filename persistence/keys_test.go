package persistence

import (
	"bytes"
	"testing"
)

func TestParseExpiryKey(t *testing.T) {
	wallet, key := []byte("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"), []byte("a/b:c") // keys may hold '/'
	ik := AppendExpiryKey(nil, 1_790_000_000_000_000_000, wallet, "claim-prepare", key)
	at, w, route, k, ok := ParseExpiryKey(ik)
	if !ok || at != 1_790_000_000_000_000_000 || !bytes.Equal(w, wallet) || route != "claim-prepare" || !bytes.Equal(k, key) {
		t.Fatalf("ParseExpiryKey(%q) = %d %q %q %q %v", ik, at, w, route, k, ok)
	}
	for _, bad := range [][]byte{
		nil,
		[]byte("g/due/12345678/x/y/z"),
		ik[:len(PrefixExpiry)+8],               // no separator after the time
		ik[:len(PrefixExpiry)+9+len(wallet)],   // no route
		ik[:len(PrefixExpiry)+9+len(wallet)+5], // route cut short, no key
	} {
		if _, _, _, _, ok := ParseExpiryKey(bad); ok {
			t.Errorf("ParseExpiryKey(%q) ok", bad)
		}
	}
}

// An index entry at the bound's time sorts at or above it, one a
// nanosecond earlier below it.
func TestTimeBound(t *testing.T) {
	const at = 1_790_000_000_000_000_000
	w, id := []byte("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"), []byte("01M8F5GW180HSMMYHB21AWVT6V")
	for _, c := range []struct {
		prefix []byte
		entry  func(at int64) []byte
	}{
		{PrefixExpiry, func(at int64) []byte { return AppendExpiryKey(nil, at, w, "register", id) }},
		{PrefixDue, func(at int64) []byte { return AppendDueKey(nil, at, id) }},
	} {
		b := TimeBound(c.prefix, at)
		if e := c.entry(at - 1); bytes.Compare(e, b) >= 0 {
			t.Errorf("%q, before the time, sorts at or above the bound %q", e, b)
		}
		if e := c.entry(at); bytes.Compare(e, b) < 0 {
			t.Errorf("%q, at the time, sorts below the bound %q", e, b)
		}
	}
}
