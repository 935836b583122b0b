package main

import (
	"bytes"
	"testing"
)

func TestJSONField(t *testing.T) {
	for _, tc := range []struct{ obj, name, want string }{
		{`{"wallet":"0xab","status":"pending"}`, "status", "pending"},
		{`{"wallet" : "0xab"}`, "wallet", "0xab"},
		{`{"a":"wallet","wallet":"0xcd"}`, "wallet", "0xcd"}, // the name as a value is skipped
		{`{"mywallet":"x","wallet":"y"}`, "wallet", "y"},
		{`{"attempts":3}`, "attempts", ""}, // not a string
		{`{"wallet":"unterminated`, "wallet", ""},
		{`{"other":"x"}`, "wallet", ""},
		{`wallet`, "wallet", ""},
		{``, "wallet", ""},
	} {
		if got := jsonField([]byte(tc.obj), []byte(tc.name)); string(got) != tc.want {
			t.Errorf("jsonField(%s, %s) = %q, want %q", tc.obj, tc.name, got, tc.want)
		}
	}
}

func FuzzJSONField(f *testing.F) {
	f.Add([]byte(`{"claimId":"01J","wallet":"0x1"}`), []byte("wallet"))
	f.Add([]byte(`"wallet"`), []byte("wallet"))
	f.Fuzz(func(t *testing.T, obj, name []byte) {
		if len(name) == 0 {
			return
		}
		if v := jsonField(obj, name); v != nil && (bytes.IndexByte(v, '"') >= 0 || !bytes.Contains(obj, v)) {
			t.Fatalf("jsonField(%q, %q) = %q", obj, name, v)
		}
	})
}
