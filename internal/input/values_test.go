package input

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/sha3"
)

// EIP-55's own test vectors.
var eip55 = []string{
	"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
	"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
	"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
	"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
}

// toChecksum is the EIP-55 reference algorithm, written independently of checksumOK.
func toChecksum(lower string) string {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(lower[2:]))
	sum := hex.EncodeToString(h.Sum(nil))
	out := []byte(lower)
	for i := 2; i < len(out); i++ {
		if out[i] >= 'a' && sum[i-2] >= '8' {
			out[i] -= 'a' - 'A'
		}
	}
	return string(out)
}

func TestAppendWallet(t *testing.T) {
	type tc struct{ name, in, err string } // err: "" ok, "wallet", "checksum"
	tests := []tc{
		{"digits only", "0x0000000000000000000000000000000000000000", ""},
		{"bad first letter case", "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "checksum"},
		{"bad last letter case", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5D359", "checksum"},
		{"all wrong", "0x5aaEB6053f3e94c9B9a09F33669435e7eF1bEaED", "checksum"},
		{"empty", "", "wallet"},
		{"0x only", "0x", "wallet"},
		{"no prefix", "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "wallet"},
		{"0X prefix", "0X5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "wallet"},
		{"short", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae", "wallet"},
		{"long", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed0", "wallet"},
		{"non-hex", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg", "wallet"},
		{"space", " 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae", "wallet"},
		{"non-ASCII", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1bé", "wallet"},
		{"tx hash", "0x" + strings.Repeat("ab", 32), "wallet"},
	}
	for _, v := range eip55 {
		tests = append(tests, tc{"checksummed " + v[:8], v, ""},
			tc{"lower " + v[:8], strings.ToLower(v), ""},
			tc{"upper " + v[:8], "0x" + strings.ToUpper(v[2:]), ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendWallet([]byte("dst:"), []byte(tt.in))
			switch tt.err {
			case "":
				if err != nil || string(got) != "dst:"+strings.ToLower(tt.in) {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			case "checksum":
				if !errors.Is(err, ErrChecksum) || !errors.Is(err, ErrWallet) {
					t.Fatalf("err = %v, want ErrChecksum", err)
				}
			default:
				if !errors.Is(err, ErrWallet) || errors.Is(err, ErrChecksum) {
					t.Fatalf("err = %v, want ErrWallet", err)
				}
			}
			if string(got) != "dst:" {
				t.Errorf("dst changed on error: %q", got)
			}
			checkMessage(t, err)
		})
	}
}

func TestAppendTxHash(t *testing.T) {
	h := "0x" + strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"lower", h, true},
		{"upper", "0x" + strings.ToUpper(h[2:]), true},
		{"mixed", "0x" + strings.ToUpper(h[2:34]) + h[34:], true},
		{"empty", "", false},
		{"0X", "0X" + h[2:], false},
		{"short", h[:65], false},
		{"long", h + "0", false},
		{"non-hex", h[:65] + "g", false},
		{"wallet", eip55[0], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendTxHash(nil, []byte(tt.in))
			if tt.ok != (err == nil) || tt.ok && string(got) != strings.ToLower(tt.in) {
				t.Fatalf("got %q, %v", got, err)
			}
			if err != nil && (!errors.Is(err, ErrTxHash) || len(got) != 0) {
				t.Fatalf("got %q, %v, want ErrTxHash", got, err)
			}
		})
	}
}

func TestAmount(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"one", "1", true},
		{"wei", "1000000000000000000", true},
		{"2^256-1", max.String(), true},
		{"77 nines", strings.Repeat("9", 77), true},
		{"2^256", new(big.Int).Add(max, big.NewInt(1)).String(), false},
		{"78 nines", strings.Repeat("9", 78), false},
		{"huge", "1" + strings.Repeat("0", 10_000), false},
		{"empty", "", false},
		{"zero", "0", false},
		{"zeros", "000", false},
		{"leading zero", "01", false},
		{"negative", "-1", false},
		{"plus", "+1", false},
		{"decimal", "1.5", false},
		{"exponent", "1e18", false},
		{"hex", "0x10", false},
		{"space", " 1", false},
		{"underscore", "1_000", false},
		{"non-ASCII digit", "１", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Amount([]byte(tt.in))
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrAmount) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				checkMessage(t, err)
			}
		})
	}
}

func TestID(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"ulid", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"max", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", true},
		{"zero", "00000000000000000000000000", true},
		{"overflow", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", false},
		{"lowercase", "01arz3ndektsv4rrffq69g5fav", false},
		{"I", "01ARZ3NDEKTSV4RRFFQ69G5FAI", false},
		{"L", "01ARZ3NDEKTSV4RRFFQ69G5FAL", false},
		{"O", "01ARZ3NDEKTSV4RRFFQ69G5FAO", false},
		{"U", "01ARZ3NDEKTSV4RRFFQ69G5FAU", false},
		{"short", "01ARZ3NDEKTSV4RRFFQ69G5FA", false},
		{"long", "01ARZ3NDEKTSV4RRFFQ69G5FAVV", false},
		{"empty", "", false},
		{"uuid", "0190b6f1-8c4e-7a3b-9c1d-2e3f4a5b6c7d", false},
		{"path trick", "../../../../../../../../etc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ID([]byte(tt.in)); tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrID) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestValuesAllocs(t *testing.T) {
	dst := make([]byte, 0, 128)
	hash := []byte("0x" + strings.Repeat("AB", 32))
	wallets := [][]byte{[]byte(eip55[0]), []byte(strings.ToLower(eip55[1]))}
	if n := testing.AllocsPerRun(100, func() {
		for _, w := range wallets {
			if _, err := AppendWallet(dst[:0], w); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := AppendTxHash(dst[:0], hash); err != nil {
			t.Fatal(err)
		}
		if Amount([]byte("1000")) != nil || ID([]byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")) != nil {
			t.Fatal("rejected")
		}
	}); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

var hexRe = regexp.MustCompile(`^0x[0-9a-fA-F]+$`)

func FuzzWallet(f *testing.F) {
	f.Fuzz(func(t *testing.T, s []byte) {
		out, err := AppendWallet([]byte("x"), s)
		if err != nil {
			if !errors.Is(err, ErrWallet) || string(out) != "x" {
				t.Fatalf("got %q, %v", out, err)
			}
			checkMessage(t, err)
			if len(s) == 42 && hexRe.Match(s) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("well-formed %q rejected: %v", s, err)
			}
			return
		}
		lower := strings.ToLower(string(s))
		if len(out) != 43 || string(out[1:]) != lower || !hexRe.Match(s) {
			t.Fatalf("%q gave %q", s, out)
		}
		if string(s) != lower && string(s[2:]) != strings.ToUpper(lower[2:]) && string(s) != toChecksum(lower) {
			t.Fatalf("mixed-case %q accepted, checksum is %s", s, toChecksum(lower))
		}
	})
}

func FuzzTxHash(f *testing.F) {
	f.Fuzz(func(t *testing.T, s []byte) {
		out, err := AppendTxHash(nil, s)
		valid := len(s) == 66 && hexRe.Match(s)
		if valid != (err == nil) {
			t.Fatalf("%q: %v", s, err)
		}
		if err == nil && string(out) != strings.ToLower(string(s)) {
			t.Fatalf("%q gave %q", s, out)
		}
	})
}

func FuzzAmount(f *testing.F) {
	f.Fuzz(func(t *testing.T, s []byte) {
		err := Amount(s)
		n, ok := new(big.Int).SetString(string(s), 10)
		want := ok && n.Sign() > 0 && n.BitLen() <= 256 && n.String() == string(s)
		if want != (err == nil) {
			t.Fatalf("Amount(%q) = %v; math/big says valid %v", s, err, want)
		}
		if err != nil {
			checkMessage(t, err)
		}
	})
}

func BenchmarkAppendWallet(b *testing.B) {
	for _, bb := range []struct{ name, in string }{
		{"lower", strings.ToLower(eip55[0])},
		{"checksummed", eip55[0]},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s, dst := []byte(bb.in), make([]byte, 0, 42)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = AppendWallet(dst[:0], s)
			}
		})
	}
	// Baseline: the keccak alone, which dominates the checksummed case.
	b.Run("keccak", func(b *testing.B) {
		s := bytes.ToLower([]byte(eip55[0][2:]))
		h := sha3.NewLegacyKeccak256()
		var sum [32]byte
		b.ReportAllocs()
		for b.Loop() {
			h.Reset()
			h.Write(s)
			h.Sum(sum[:0])
		}
	})
}
