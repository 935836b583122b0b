package main

import (
	"net/netip"
	"regexp"
	"testing"
)

func TestGenerators(t *testing.T) {
	rng := newRNG()
	for _, tc := range []struct {
		name string
		gen  func([]byte) []byte
		re   *regexp.Regexp
	}{
		{"wallet", func(b []byte) []byte { return appendWallet(b, rng) }, regexp.MustCompile(`^0x[0-9a-f]{40}$`)},
		{"txHash", func(b []byte) []byte { return appendTxHash(b, rng) }, regexp.MustCompile(`^0x[0-9a-f]{64}$`)},
		{"key", func(b []byte) []byte { return appendKey(b, rng) }, regexp.MustCompile(`^[0-9a-f]{32}$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 1000 {
				v := string(tc.gen(nil))
				if !tc.re.MatchString(v) {
					t.Fatalf("%q does not match %s", v, tc.re)
				}
				if seen[v] {
					t.Fatalf("%q generated twice", v)
				}
				seen[v] = true
			}
			buf := make([]byte, 0, 80)
			if n := testing.AllocsPerRun(100, func() { buf = tc.gen(buf[:0]) }); n != 0 {
				t.Errorf("%v allocations per value, want 0", n)
			}
		})
	}
}

func TestAppendIPv4(t *testing.T) {
	base := netip.MustParseAddr("10.0.0.250")
	for n, want := range map[uint32]string{0: "10.0.0.250", 5: "10.0.0.255", 6: "10.0.1.0", 1 << 16: "10.1.0.250"} {
		if got := string(appendIPv4(nil, base, n)); got != want {
			t.Errorf("base+%d = %s, want %s", n, got, want)
		}
	}
}
