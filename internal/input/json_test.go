package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

var fields = []string{"wallet", "amount", "a", ""}

func TestDecodeObject(t *testing.T) {
	deep := func(open, close string) string {
		return `{"a":` + strings.Repeat(open, 100_000) + strings.Repeat(close, 100_000) + `}`
	}
	tests := []struct {
		name, body string
		want       map[string]string // on success: every field present
		err        error
	}{
		{"empty object", `{}`, map[string]string{}, nil},
		{"whitespace", " \t\r\n{ \"wallet\" : \"0xab\" ,\n\"amount\":\"1\" } \n", map[string]string{"wallet": "0xab", "amount": "1"}, nil},
		{"empty string and key", `{"":"","a":""}`, map[string]string{"": "", "a": ""}, nil},
		{"escapes", `{"a":"q\"b\\s\/\b\f\n\r\t"}`, map[string]string{"a": "q\"b\\s/\b\f\n\r\t"}, nil},
		{"unicode escapes", `{"a":"\u00e9\u20AC\ud83d\ude00x"}`, map[string]string{"a": "é€😀x"}, nil},
		{"escaped NUL", `{"a":"\u0000"}`, map[string]string{"a": "\x00"}, nil},
		{"raw UTF-8", `{"a":"héllo 😀 \u0041"}`, map[string]string{"a": "héllo 😀 A"}, nil},
		{"escaped key", `{"w\u0061llet":"x"}`, map[string]string{"wallet": "x"}, nil},
		{"DEL is fine", "{\"a\":\"\x7f\"}", map[string]string{"a": "\x7f"}, nil},

		{"empty body", ``, nil, ErrSyntax},
		{"only space", "  \n", nil, ErrSyntax},
		{"array body", `["a"]`, nil, ErrSyntax},
		{"string body", `"a"`, nil, ErrSyntax},
		{"truncated", `{"a":"b"`, nil, ErrSyntax},
		{"truncated string", `{"a":"b`, nil, ErrSyntax},
		{"truncated key", `{"a`, nil, ErrSyntax},
		{"truncated after colon", `{"a":`, nil, ErrSyntax},
		{"truncated escape", `{"a":"\`, nil, ErrSyntax},
		{"truncated unicode escape", `{"a":"\u00`, nil, ErrSyntax},
		{"open brace", `{`, nil, ErrSyntax},
		{"trailing comma", `{"a":"b",}`, nil, ErrSyntax},
		{"leading comma", `{,"a":"b"}`, nil, ErrSyntax},
		{"missing colon", `{"a" "b"}`, nil, ErrSyntax},
		{"missing comma", `{"a":"b" "wallet":"c"}`, nil, ErrSyntax},
		{"trailing data", `{"a":"b"}x`, nil, ErrSyntax},
		{"two objects", `{}{}`, nil, ErrSyntax},
		{"single quotes", `{'a':'b'}`, nil, ErrSyntax},
		{"unquoted key", `{a:"b"}`, nil, ErrSyntax},
		{"bad escape", `{"a":"\x"}`, nil, ErrSyntax},
		{"bad unicode escape", `{"a":"\u12g4"}`, nil, ErrSyntax},
		{"lone high surrogate", `{"a":"\ud83d"}`, nil, ErrSyntax},
		{"high surrogate then char", `{"a":"\ud83dxxxxxx"}`, nil, ErrSyntax},
		{"high surrogate then BMP", `{"a":"\ud83d\u0041"}`, nil, ErrSyntax},
		{"lone low surrogate", `{"a":"\ude00"}`, nil, ErrSyntax},
		{"raw control char", "{\"a\":\"\n\"}", nil, ErrSyntax},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", nil, ErrSyntax},
		{"truncated UTF-8", "{\"a\":\"\xe2\x82\"}", nil, ErrSyntax},
		{"UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", nil, ErrSyntax},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", nil, ErrSyntax},
		{"invalid UTF-8 in key", "{\"\xff\":\"a\"}", nil, ErrSyntax},
		{"BOM", "\xef\xbb\xbf{}", nil, ErrSyntax},
		{"bare word", `{"a":nope}`, nil, ErrSyntax},
		{"nested array 100k", `[` + strings.Repeat("[", 100_000), nil, ErrSyntax},

		{"number", `{"amount":1}`, nil, ErrType},
		{"huge number", `{"amount":1` + strings.Repeat("0", 10_000) + `}`, nil, ErrType},
		{"negative number", `{"amount":-1e999}`, nil, ErrType},
		{"null", `{"wallet":null}`, nil, ErrType},
		{"bool", `{"wallet":true}`, nil, ErrType},
		{"false", `{"wallet":false}`, nil, ErrType},
		{"object", `{"a":{"b":"c"}}`, nil, ErrType},
		{"array", `{"a":["b"]}`, nil, ErrType},
		{"deep objects", deep(`{"a":`, `}`), nil, ErrType},
		{"deep arrays", deep(`[`, `]`), nil, ErrType},

		{"duplicate", `{"a":"1","a":"2"}`, nil, ErrDuplicateKey},
		{"duplicate empty", `{"a":"","a":""}`, nil, ErrDuplicateKey},
		{"duplicate escaped", `{"a":"1","\u0061":"2"}`, nil, ErrDuplicateKey},
		{"unknown", `{"wallet":"x","extra":"y"}`, nil, ErrUnknownField},
		{"case matters", `{"Wallet":"x"}`, nil, ErrUnknownField},
		{"unknown before bad value", `{"extra":1}`, nil, ErrUnknownField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := make([][]byte, len(fields))
			for i := range vals {
				vals[i] = []byte("stale") // DecodeObject must clear these
			}
			_, err := DecodeObject([]byte(tt.body), fields, vals, nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				checkMessage(t, err)
				return
			}
			for i, name := range fields {
				want, ok := tt.want[name]
				if got := vals[i]; (got != nil) != ok || string(got) != want {
					t.Errorf("%q = %q (present %v), want %q (present %v)", name, got, got != nil, want, ok)
				}
			}
		})
	}
}

// checkMessage asserts that an error message is short enough to show a client.
func checkMessage(t *testing.T, err error) {
	t.Helper()
	if len(err.Error()) > 160 {
		t.Errorf("message too long (%d bytes): %s", len(err.Error()), err)
	}
	var e *Error
	if !errors.As(err, &e) || len(e.Field) > maxEcho {
		t.Errorf("want an *Error with a short Field, got %#v", err)
	}
}

func TestDecodeObjectErrorDetail(t *testing.T) {
	_, err := DecodeObject([]byte(`{"amount": 12}`), fields, make([][]byte, len(fields)), nil)
	var e *Error
	if !errors.As(err, &e) || e.Field != "amount" || e.Offset != 11 {
		t.Fatalf("got %#v", err)
	}
	if want := `input: wrong JSON type: field "amount" must be a string, not number`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	_, err = DecodeObject([]byte(`{"`+strings.Repeat("k", 1000)+`":"v"}`), fields, make([][]byte, len(fields)), nil)
	if !errors.As(err, &e) || e.Field != strings.Repeat("k", maxEcho) {
		t.Errorf("got %v", err)
	}
}

func TestDecodeObjectScratch(t *testing.T) {
	vals := make([][]byte, len(fields))
	body := []byte(`{"w\u0061llet":"0x\u0041b","amount":"12","a":"\n"}`)
	scratch, err := DecodeObject(body, fields, vals, make([]byte, 0, 1)) // forces regrowth
	if err != nil {
		t.Fatal(err)
	}
	if string(vals[0]) != "0xAb" || string(vals[1]) != "12" || string(vals[2]) != "\n" || vals[3] != nil {
		t.Fatalf("vals = %q", vals)
	}
	if string(scratch) != "0xAb\n" { // the key's unescaped form was dropped
		t.Errorf("scratch = %q", scratch)
	}
	if &vals[1][0] != &body[bytes.Index(body, []byte(`"12"`))+1] {
		t.Error("unescaped value does not alias body")
	}
	// Values are capped: appending to one must not clobber its neighbour.
	_ = append(vals[0], "zzz"...)
	if string(vals[2]) != "\n" {
		t.Errorf("append clobbered a value: %q", vals[2])
	}
}

func TestDecodeObjectAllocs(t *testing.T) {
	body := []byte(`{"wallet":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed","amount":"1000000000000000000"}`)
	vals := make([][]byte, len(fields))
	scratch := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeObject(body, fields, vals, scratch[:0]); err != nil {
			t.Fatal(err)
		}
	})
	escaped := []byte(`{"wallet":"\u0030x5a","a":"\ud83d\ude00"}`)
	allocs += testing.AllocsPerRun(100, func() {
		if _, err := DecodeObject(escaped, fields, vals, scratch[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}

func FuzzDecodeObject(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		vals := make([][]byte, len(fields))
		orig := bytes.Clone(body)
		_, err := DecodeObject(body, fields, vals, nil)
		if !bytes.Equal(body, orig) {
			t.Fatal("body modified")
		}
		var m map[string]string
		jsonErr := json.Unmarshal(body, &m)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrType) && !errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrUnknownField) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			checkMessage(t, err)
			// encoding/json is laxer only about invalid UTF-8 and lone surrogates,
			// which it replaces with U+FFFD; otherwise only our field rules differ.
			if jsonErr == nil && m != nil && !bytes.Contains(body, []byte(`\u`)) && utf8.Valid(body) &&
				!errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrUnknownField) {
				t.Fatalf("encoding/json accepts %q, we say %v", body, err)
			}
			return
		}
		if jsonErr != nil || m == nil {
			t.Fatalf("we accept %q, encoding/json says %v", body, jsonErr)
		}
		if n := countKeys(body); n != len(m) {
			t.Fatalf("%d keys but %d distinct", n, len(m))
		}
		for i, name := range fields {
			want, ok := m[name]
			if (vals[i] != nil) != ok || string(vals[i]) != want {
				t.Fatalf("%q = %q, encoding/json has %q", name, vals[i], want)
			}
			delete(m, name)
		}
		if len(m) != 0 {
			t.Fatalf("unknown keys accepted: %v", m)
		}
	})
}

// countKeys counts the keys of the object in body, duplicates included; all
// values are strings, so half of the string tokens are keys.
func countKeys(body []byte) int {
	d := json.NewDecoder(bytes.NewReader(body))
	n := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return n / 2
		}
		if _, ok := tok.(string); ok {
			n++
		}
	}
}

func BenchmarkDecodeObject(b *testing.B) {
	plain := []byte(`{"wallet":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","claimId":"01ARZ3NDEKTSV4RRFFQ69G5FAV","txHash":"0x` + strings.Repeat("ab", 32) + `"}`)
	escaped := bytes.ReplaceAll(plain, []byte("0x"), []byte(`\u0030x`))
	names := []string{"wallet", "claimId", "txHash"}
	for _, bb := range []struct {
		name string
		body []byte
	}{{"plain", plain}, {"escaped", escaped}} {
		b.Run(bb.name, func(b *testing.B) {
			vals, scratch := make([][]byte, len(names)), []byte(nil)
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if scratch, err = DecodeObject(bb.body, names, vals, scratch[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Baseline: encoding/json into a struct, without the strictness checks.
	b.Run("encoding/json", func(b *testing.B) {
		var v struct{ Wallet, ClaimID, TxHash string }
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		for b.Loop() {
			if err := json.Unmarshal(plain, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
