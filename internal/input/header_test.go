package input

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestAppendIdempotencyKey(t *testing.T) {
	k255 := strings.Repeat("k", 255)
	tests := []struct {
		name, in, want string // want "" means an error
	}{
		{"token", "abc-123", "abc-123"},
		{"uuid", "8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{"visible punctuation", `!#$%&'()*+,./:;<=>?@[\]^_{|}~`, `!#$%&'()*+,./:;<=>?@[\]^_{|}~`},
		{"trimmed", " \t abc \t", "abc"},
		{"255", k255, k255},
		{"quoted", `"abc"`, "abc"},
		{"quoted space", `" a b "`, " a b "},
		{"quoted escapes", `"a\"b\\c"`, `a"b\c`},
		{"quoted 255", `"` + k255 + `"`, k255},
		{"quoted 255 after unescape", `"\\` + k255[1:] + `"`, `\` + k255[1:]},
		{"quoted trimmed", ` "abc" `, "abc"},
		{"inner quote in token", `ab"c`, `ab"c`},

		{"empty", "", ""},
		{"whitespace only", " \t ", ""},
		{"256", k255 + "k", ""},
		{"inner space", "a b", ""},
		{"control", "a\x01b", ""},
		{"DEL", "a\x7fb", ""},
		{"newline", "a\nb", ""},
		{"NUL", "a\x00", ""},
		{"non-ASCII", "clé", ""},
		{"quoted empty", `""`, ""},
		{"quoted 256", `"` + k255 + `k"`, ""},
		{"lone quote", `"`, ""},
		{"unterminated", `"abc`, ""},
		{"escaped closing quote", `"abc\"`, ""},
		{"bad escape", `"a\nb"`, ""},
		{"unescaped inner quote", `"a"b"`, ""},
		{"quoted control", "\"a\tb\"", ""},
		{"quoted non-ASCII", `"é"`, ""},
		{"two keys", `"a", "b"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendIdempotencyKey([]byte("dst:"), []byte(tt.in))
			if tt.want == "" {
				if !errors.Is(err, ErrIdempotencyKey) || string(got) != "dst:" {
					t.Fatalf("got %q, %v, want ErrIdempotencyKey", got, err)
				}
				checkMessage(t, err)
				return
			}
			if err != nil || string(got) != "dst:"+tt.want {
				t.Fatalf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzIdempotencyKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, h []byte) {
		key, err := AppendIdempotencyKey(nil, h)
		if err != nil {
			if !errors.Is(err, ErrIdempotencyKey) || len(key) != 0 {
				t.Fatalf("got %q, %v", key, err)
			}
			checkMessage(t, err)
			return
		}
		quoted := strings.HasPrefix(strings.TrimLeft(string(h), " \t"), `"`)
		if len(key) < 1 || len(key) > 255 {
			t.Fatalf("%q: key of %d bytes", h, len(key))
		}
		for _, c := range key {
			if c < 0x20 || c > 0x7e || c == ' ' && !quoted {
				t.Fatalf("%q: key %q has byte %#x", h, key, c)
			}
		}
		// Round trip through the sf-string form.
		sf := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(string(key)) + `"`
		if again, err := AppendIdempotencyKey(nil, []byte(sf)); err != nil || string(again) != string(key) {
			t.Fatalf("%q -> %q -> %s -> %q, %v", h, key, sf, again, err)
		}
	})
}

func mustPrefixes(t testing.TB, s string) Prefixes {
	p, err := ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	proxies := mustPrefixes(t, "10.0.0.0/8, 192.168.0.0/16, fd00::/8, ::1")
	a := netip.MustParseAddr
	lb, client, other := a("10.0.0.1"), a("203.0.113.7"), a("198.51.100.9")
	tests := []struct {
		name    string
		peer    netip.Addr
		xff     string
		trusted func(netip.Addr) bool
		want    netip.Addr
	}{
		{"no trust config", lb, "203.0.113.7", nil, lb},
		{"spoofed by untrusted peer", client, "1.2.3.4, 10.0.0.5", proxies.Contains, client},
		{"mapped untrusted peer", a("::ffff:203.0.113.7"), "1.2.3.4", proxies.Contains, client},
		{"no header", lb, "", proxies.Contains, lb},
		{"blank header", lb, " , ,", proxies.Contains, lb},
		{"one hop", lb, "203.0.113.7", proxies.Contains, client},
		{"rightmost untrusted wins", lb, "1.1.1.1, 198.51.100.9, 203.0.113.7", proxies.Contains, client},
		{"trusted hops skipped", lb, "1.1.1.1, 203.0.113.7, 10.1.1.1,192.168.0.9", proxies.Contains, client},
		{"forged left part ignored", lb, "10.9.9.9, 198.51.100.9, 10.0.0.2", proxies.Contains, other},
		{"all trusted: leftmost", lb, "10.0.0.3, 10.0.0.2", proxies.Contains, a("10.0.0.3")},
		{"garbage stops at last trusted", lb, "203.0.113.7, bogus, 10.0.0.2", proxies.Contains, a("10.0.0.2")},
		{"garbage right after peer", lb, "203.0.113.7, <script>", proxies.Contains, lb},
		{"garbage only", lb, "\x00\xff", proxies.Contains, lb},
		{"empty entries skipped", lb, "203.0.113.7,, ,10.0.0.2,", proxies.Contains, client},
		{"ipv4 with port", lb, "203.0.113.7:4711", proxies.Contains, client},
		{"bare ipv6", lb, "2001:db8::1", proxies.Contains, a("2001:db8::1")},
		{"bracketed ipv6", lb, "[2001:db8::1]", proxies.Contains, a("2001:db8::1")},
		{"bracketed ipv6 with port", lb, " [2001:db8::1]:443 ", proxies.Contains, a("2001:db8::1")},
		{"ipv6 proxy chain", a("::1"), "2001:db8::1, fd00::2", proxies.Contains, a("2001:db8::1")},
		{"mapped hop", lb, "::ffff:203.0.113.7", proxies.Contains, client},
		{"mapped trusted hop", lb, "203.0.113.7, [::ffff:10.0.0.2]:1", proxies.Contains, client},
		{"bracketed ipv4", lb, "[203.0.113.7]", proxies.Contains, lb},
		{"bad port", lb, "203.0.113.7:99999", proxies.Contains, lb},
		{"empty port", lb, "203.0.113.7:", proxies.Contains, lb},
		{"zone", lb, "fe80::1%eth0", proxies.Contains, lb},
		{"cidr", lb, "203.0.113.0/24", proxies.Contains, lb},
		{"unclosed bracket", lb, "[2001:db8::1", proxies.Contains, lb},
		{"RFC 7239 syntax", lb, `for="[2001:db8::1]"`, proxies.Contains, lb},
		{"trust everything", lb, "203.0.113.7, 198.51.100.9", func(netip.Addr) bool { return true }, client},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientIP(tt.peer, []byte(tt.xff), tt.trusted); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClientIPAllocs(t *testing.T) {
	p := mustPrefixes(t, "10.0.0.0/8, fd00::/8")
	xff := []byte("203.0.113.7, [fd00::1]:80, 10.0.0.2:8080")
	peer := netip.MustParseAddr("10.0.0.1")
	if n := testing.AllocsPerRun(100, func() { ClientIP(peer, xff, p.Contains) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		name, in, want string // want "!" means an error
		bad            []string
	}{
		{"empty", "", "", nil},
		{"list", "10.0.0.0/8, ::1/128", "10.0.0.0/8, ::1/128", nil},
		{"bare addresses", "10.0.0.1,2001:db8::1", "10.0.0.1/32, 2001:db8::1/128", nil},
		{"masked", "10.1.2.3/8", "10.0.0.0/8", nil},
		{"mapped", "::ffff:10.0.0.0/104", "10.0.0.0/8", nil},
		{"blanks", " , 10.0.0.0/8 ,\t,", "10.0.0.0/8", nil},
		{"every bad entry", "10.0.0.0/33, 10.0.0.0/8, nope, fe80::1%eth0, 1.2.3.4/", "!",
			[]string{`"10.0.0.0/33"`, `"nope"`, `"fe80::1%eth0"`, `"1.2.3.4/"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePrefixes(tt.in)
			if tt.want == "!" {
				if !errors.Is(err, ErrPrefix) {
					t.Fatalf("err = %v, want ErrPrefix", err)
				}
				for _, b := range tt.bad {
					if !strings.Contains(err.Error(), b) {
						t.Errorf("%v does not name %s", err, b)
					}
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("got %q, %v, want %q", p, err, tt.want)
			}
		})
	}
}

func TestPrefixesContains(t *testing.T) {
	p := mustPrefixes(t, "10.0.0.0/8, fe80::/10, ::1")
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"10.255.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"11.0.0.1", false},
		{"::1", true},
		{"fe80::1%eth0", true},
		{"::2", false},
		{"::a00:1", false}, // not mapped: 10.0.0.1 in the last bytes of ::/96
	} {
		t.Run(tt.addr, func(t *testing.T) {
			if got := p.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) = %v", tt.addr, got)
			}
		})
	}
	if (Prefixes{}).Contains(netip.MustParseAddr("10.0.0.1")) || (Prefixes{}).Contains(netip.Addr{}) {
		t.Error("zero Prefixes contains something")
	}
}

// refClientIP is ClientIP written the slow, obvious way with the standard library.
func refClientIP(peer netip.Addr, xff string, trusted func(netip.Addr) bool) netip.Addr {
	last := peer.Unmap()
	if trusted == nil || !trusted(last) {
		return last
	}
	parts := strings.Split(xff, ",")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.Trim(parts[i], " \t")
		if p == "" {
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			var ap netip.AddrPort
			if ap, err = netip.ParseAddrPort(p); err == nil {
				a = ap.Addr()
			} else if strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]") {
				if a, err = netip.ParseAddr(p[1 : len(p)-1]); err == nil && !a.Is6() {
					err = errors.New("bracketed IPv4")
				}
			}
		}
		if err != nil || a.Zone() != "" {
			return last
		}
		if a = a.Unmap(); !trusted(a) {
			return a
		}
		last = a
	}
	return last
}

func FuzzClientIP(f *testing.F) {
	p := mustPrefixes(f, "10.0.0.0/8, 192.168.0.0/16, fd00::/8, ::1")
	f.Fuzz(func(t *testing.T, peer string, xff []byte) {
		pa, err := netip.ParseAddr(peer)
		if err != nil {
			pa = netip.MustParseAddr("10.0.0.1")
		}
		got := ClientIP(pa, xff, p.Contains)
		if want := refClientIP(pa, string(xff), p.Contains); got != want {
			t.Fatalf("ClientIP(%v, %q) = %v, reference says %v", pa, xff, got, want)
		}
		if got.Is4In6() || !got.IsValid() {
			t.Fatalf("ClientIP(%v, %q) = %v", pa, xff, got)
		}
		if got := ClientIP(pa, xff, nil); got != pa.Unmap() {
			t.Fatalf("no trust: got %v", got)
		}
	})
}
