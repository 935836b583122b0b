package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestValidSignature(t *testing.T) {
	s := &Server{webhookSecret: []byte("secret")}
	body := []byte(`{"event":{"id":"x","type":"charge:confirmed"}}`)
	m := hmac.New(sha256.New, s.webhookSecret)
	m.Write(body)
	good := hex.EncodeToString(m.Sum(nil))
	for _, tc := range []struct {
		sig  string
		want bool
	}{
		{good, true},
		{string(hexUpper(good)), true},
		{"", false},
		{good[:63], false},
		{good + "0", false},
		{"g" + good[1:], false},
		{good[:63] + flip(good[63]), false},
	} {
		if got := s.validSignature([]byte(tc.sig), body); got != tc.want {
			t.Errorf("validSignature(%q) = %v, want %v", tc.sig, got, tc.want)
		}
	}
}

func hexUpper(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return b
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestPrice(t *testing.T) {
	for _, tc := range []struct {
		pricing    string
		amount, cc string
	}{
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"100.00","currency":"USD"}}}}}`, "100.00", "USD"},
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"100.00","currency":"USD"},"settlement":{"amount":"99.5","currency":"USDC"}}}}}`, "99.5", "USDC"},
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"100.00","currency":"USD"},"settlement":{"amount":"-1","currency":"USDC"}}}}}`, "100.00", "USD"},
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"0.00","currency":"USD"}}}}}`, "", ""},
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"1e3","currency":"USD"}}}}}`, "", ""},
		{`{"event":{"id":"e","type":"t","data":{"pricing":{"local":{"amount":"1.","currency":"usd"}}}}}`, "", ""},
		{`{"event":{"id":"e","type":"t","data":"not an object"}}`, "", ""},
	} {
		ev, _, err := parseCommerce([]byte(tc.pricing))
		if err != nil || ev.Amount != tc.amount || ev.Currency != tc.cc {
			t.Errorf("%s: %q %q %v, want %q %q", tc.pricing, ev.Amount, ev.Currency, err, tc.amount, tc.cc)
		}
	}
}

// FuzzParseCommerce: any body parses or fails without panicking, and what
// parses carries a key-safe event id and, if any, a valid lowercase wallet.
func FuzzParseCommerce(f *testing.F) {
	f.Add([]byte(`{"id":1,"event":{"id":"24934862-d980-46cb-9402-43c81b0cdba6","type":"charge:confirmed","data":{"code":"66BEOV2A","metadata":{"wallet":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"},"pricing":{"local":{"amount":"1.00","currency":"USD"}}}}}`))
	f.Add([]byte(`{"event":{"id":"a","type":"b","data":{"metadata":{"wallet":7}}}}`))
	f.Add([]byte(`{"event":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, wallet, err := parseCommerce(body)
		if err != nil {
			return
		}
		if !validEventID(ev.ID) || ev.Type == "" {
			t.Fatalf("accepted event %+v", ev)
		}
		if wallet != nil && (len(wallet) != 42 || string(wallet[:2]) != "0x") {
			t.Fatalf("accepted wallet %q", wallet)
		}
	})
}
