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
