package persistence

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

type jsonAppender interface{ AppendJSON([]byte) []byte }

// checkJSON fails unless v.AppendJSON writes exactly what json.Marshal(v)
// does, both into an empty and onto a non-empty buffer.
func checkJSON(t testing.TB, v jsonAppender) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", v, err)
	}
	if got := v.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON differs from json.Marshal for %#v\n got %s\nwant %s", v, got, want)
	}
	prefix := []byte("prefix:")
	if got := v.AppendJSON(prefix); !bytes.Equal(got, append(prefix, want...)) {
		t.Fatalf("AppendJSON onto %q wrote %q, want the prefix and %s", prefix, got, want)
	}
}

// awkward holds string pieces that encoding/json escapes or replaces.
var awkward = []string{
	"", `"`, `\`, `\"`, "<", ">", "&", "</script>", "a&b<c>d",
	"\x00", "\x01", "\x07", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t", "\v",
	"\u2028", "\u2029", "\u2027", "\u202a", "x\u2028y",
	"\xff", "\xfe", "\xc0\x80", "\xe2\x80", "\xe2\x80\xa8"[:2], "\xed\xa0\x80", "\xf4\x90\x80\x80",
	"\ufffd", "\uffff", "é", "日本", "😀", "👩‍👩‍👧", "\U0010ffff",
	"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "01M8EA7K1YA199N2458RBE4N6G",
	"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "plain ascii text",
}

func randString(rng *rand.Rand, nonEmpty bool) string {
	var b strings.Builder
	for n := rng.IntN(6); n > 0 || (nonEmpty && b.Len() == 0); n-- {
		if rng.IntN(4) == 0 {
			for range rng.IntN(8) + 1 {
				b.WriteByte(byte(rng.UintN(256)))
			}
			continue
		}
		b.WriteString(awkward[rng.IntN(len(awkward))])
	}
	return b.String()
}

var zones = []*time.Location{
	time.UTC, time.Local,
	time.FixedZone("", 0), // not UTC, but offset 0: written as Z
	time.FixedZone("EST", -5*3600),
	time.FixedZone("IST", 5*3600+1800),
	time.FixedZone("NPT", 5*3600+2700),
	time.FixedZone("LMT", 1172), // +00:19:32; RFC 3339 drops the seconds
	time.FixedZone("", -1),      // -00:00:01, written -00:00
	time.FixedZone("", 23*3600+59*60),
	time.FixedZone("", -(23*3600 + 59*60)),
}

// randTime returns a time that json.Marshal accepts (year in [0,9999] in
// its zone), never the zero time when nonZero.
func randTime(rng *rand.Rand, nonZero bool) time.Time {
	switch rng.IntN(8) {
	case 0:
		if !nonZero {
			return time.Time{}
		}
	case 1:
		return time.Now() // with a monotonic reading
	case 2:
		return time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	case 3:
		return time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	}
	// Years 1 to 9998 stay within [0,9999] in every zone.
	lo := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	sec := lo + rng.Int64N(hi-lo)
	var nsec int64
	switch rng.IntN(5) {
	case 1:
		nsec = rng.Int64N(1000) * 1e6
	case 2:
		nsec = rng.Int64N(1e6) * 1e3
	case 3:
		nsec = rng.Int64N(1e9)
	case 4:
		nsec = 1e8 // .1
	}
	return time.Unix(sec, nsec).In(zones[rng.IntN(len(zones))])
}

func randInt(rng *rand.Rand, nonZero bool) int64 {
	switch rng.IntN(6) {
	case 0:
		if !nonZero {
			return 0
		}
		return 1
	case 1:
		return math.MaxInt
	case 2:
		return math.MinInt
	case 3:
		return -rng.Int64N(1000) - 1
	}
	return rng.Int64N(100) + 1
}

// fill sets every field of the struct *p to a random value; nonZero makes
// each value non-empty, so that every field is written. A field of a type
// without a case here fails the test: AppendJSON must learn it first.
func fill(t testing.TB, rng *rand.Rand, p any, nonZero bool) {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Type() {
		case reflect.TypeFor[string]():
			f.SetString(randString(rng, nonZero))
		case reflect.TypeFor[int]():
			f.SetInt(randInt(rng, nonZero))
		case reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(randTime(rng, nonZero)))
		case reflect.TypeFor[*time.Time]():
			if !nonZero && rng.IntN(3) == 0 {
				f.SetZero()
				continue
			}
			tm := randTime(rng, nonZero)
			f.Set(reflect.ValueOf(&tm))
		default:
			t.Fatalf("%s.%s is a %s: teach AppendJSON and fill about it",
				v.Type().Name(), v.Type().Field(i).Name, f.Type())
		}
	}
}

func TestRecordJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 53, 46, 430_000_000, time.UTC)
	next := at.Add(1500 * time.Millisecond)
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		v    jsonAppender
	}{
		{"settlement/zero", &Settlement{}},
		{"settlement/registration", &Settlement{
			ID: "01M8EA7K1YA199N2458VJ7AX53", Kind: KindRegistration,
			Wallet: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Status: StatusPending,
			CreatedAt: at, UpdatedAt: at, RegistrationID: "01M8EA7K1YA199N2458RBE4N6G",
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		}},
		{"settlement/every field", &Settlement{
			ID: "s", Kind: KindPayment, Wallet: "w", Status: StatusRunning, Attempts: 3,
			NextAttemptAt: &next, LastError: `backend answered 503: {"error":"<busy> & retry"}`,
			CreatedAt: at.In(berlin), UpdatedAt: next.In(berlin), RegistrationID: "r", ClaimID: "c",
			Amount: "12.50", TxHash: "0xabc", EventID: "e", Currency: "USD", TraceParent: "tp",
		}},
		{"settlement/negative attempts", &Settlement{Attempts: -7}},
		{"settlement/max attempts", &Settlement{Attempts: math.MaxInt}},
		{"settlement/next at zero time", &Settlement{NextAttemptAt: new(time.Time)}},
		{"settlement/control characters", &Settlement{LastError: "\x00\x01\b\f\n\r\t\x0b\x1f\x7f"}},
		{"settlement/line separators", &Settlement{LastError: "a\u2028b\u2029c"}},
		{"settlement/invalid utf-8", &Settlement{LastError: "\xff\xfe ok \xe2\x80 \xed\xa0\x80"}},
		{"settlement/emoji", &Settlement{LastError: "😀 👩‍👩‍👧 \ufffd"}},
		{"registration/zero", &Registration{}},
		{"registration", &Registration{ID: "r", Wallet: "w", SettlementID: "s", CreatedAt: at}},
		{"registration/nanoseconds", &Registration{CreatedAt: at.Add(123456789)}},
		{"registration/trailing zeros", &Registration{CreatedAt: at.Add(100)}},
		{"claim/zero", &Claim{}},
		{"claim/prepared", &Claim{
			ID: "c", Wallet: "w", Amount: "100", Nonce: "0x00ff", ExpiresAt: at.Add(time.Hour),
			Signature: "c2ln+/bmF0dXJl==",
		}},
		{"claim/recorded", &Claim{
			ID: "c", Wallet: "w", Amount: "100", Nonce: "0x00ff", ExpiresAt: at.Add(time.Hour),
			Signature: "sig", TxHash: "0xabc", SettlementID: "s", RecordedAt: at,
		}},
		// IsZero ignores the location, and so does omitzero.
		{"claim/zero recordedAt in a zone", &Claim{RecordedAt: time.Time{}.In(berlin)}},
		{"claim/recordedAt in a zone", &Claim{RecordedAt: at.In(time.FixedZone("", -(9*3600 + 30*60)))}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkJSON(t, tc.v) })
	}
}

func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for range 3000 {
		checkRandomRecords(t, rng, false)
	}
}

// TestRecordJSONCoversEveryField sets every field, so a field added to a
// record and not to its appender fails here even if omitted when empty.
func TestRecordJSONCoversEveryField(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		checkRandomRecords(t, rng, true)
	}
}

// checkRandomRecords fills one record of each kind from rng (every field
// set when every is true) and compares its AppendJSON with encoding/json.
func checkRandomRecords(t *testing.T, rng *rand.Rand, every bool) {
	var (
		st  Settlement
		reg Registration
		cl  Claim
	)
	fill(t, rng, &st, every)
	fill(t, rng, &reg, every)
	fill(t, rng, &cl, every)
	checkJSON(t, &st)
	checkJSON(t, &reg)
	checkJSON(t, &cl)
}

// timeRefused reports whether time.Time.MarshalJSON refuses t.
func timeRefused(t time.Time) bool {
	_, offset := t.Zone()
	return t.Year() < 0 || t.Year() > 9999 || offset <= -24*3600 || offset >= 24*3600
}

// TestRecordJSONOutOfRangeTimes pins the one documented difference: where
// json.Marshal refuses a time, AppendJSON writes it in the same layout.
func TestRecordJSONOutOfRangeTimes(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(time.FixedZone("", 2*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -25*3600)),
	} {
		if !timeRefused(tm) {
			t.Fatalf("%v: timeRefused is wrong", tm)
		}
		reg := &Registration{CreatedAt: tm}
		if _, err := json.Marshal(reg); err == nil {
			t.Fatalf("json.Marshal accepted %v", tm)
		}
		want := `{"registrationId":"","wallet":"","settlementId":"","createdAt":"` +
			tm.Format(time.RFC3339Nano) + `"}`
		if got := reg.AppendJSON(nil); string(got) != want {
			t.Fatalf("AppendJSON wrote %s, want %s", got, want)
		}
	}
}

func FuzzRecordJSON(f *testing.F) {
	now := time.Date(2026, 11, 27, 10, 53, 46, 430_000_000, time.UTC)
	f.Add("01M8EA7K1YA199N2458VJ7AX53", KindRegistration, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
		StatusPending, 0, now.Unix(), int64(now.Nanosecond()), int32(0), false)
	f.Add(`"\<>&`, "\x00\b\f\n\r\t\x1f\x7f", "\u2028\u2029", "\xff\xe2\x80😀", -3,
		int64(-62135596800), int64(1), int32(-5*3600), true)
	f.Add("", "", "", "", math.MaxInt, int64(253402300799), int64(999999999), int32(23*3600+59*60), true)
	f.Add("a", "b", "c", "d", 1, int64(253402300800), int64(0), int32(86400), true) // refused
	f.Fuzz(func(t *testing.T, a, b, c, d string, n int, sec, nsec int64, offset int32, set bool) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
		st := &Settlement{
			ID: a, Kind: b, Wallet: c, Status: d, Attempts: n, LastError: a + d,
			CreatedAt: tm, UpdatedAt: tm,
		}
		cl := &Claim{ID: a, Wallet: b, Amount: c, Nonce: d, ExpiresAt: tm, Signature: b + c}
		if set {
			st.NextAttemptAt = &tm
			st.RegistrationID, st.ClaimID, st.Amount, st.TxHash = a, b, c, d
			st.EventID, st.Currency, st.TraceParent = d, c, b
			cl.TxHash, cl.SettlementID, cl.RecordedAt = d, a, tm
		}
		reg := &Registration{ID: a, Wallet: b, SettlementID: c, CreatedAt: tm}
		if _, err := json.Marshal(reg); err != nil || timeRefused(tm) {
			if err == nil || !timeRefused(tm) {
				t.Fatalf("%v: json.Marshal error %v, timeRefused %v", tm, err, timeRefused(tm))
			}
			return
		}
		checkJSON(t, st)
		checkJSON(t, cl)
		checkJSON(t, reg)
	})
}

// BenchmarkSettlementJSON pits AppendJSON against the json.Marshal it
// replaces. AppendJSON reuses its buffer, as setSettlement does.
func BenchmarkSettlementJSON(b *testing.B) {
	at := time.Date(2026, 11, 27, 10, 53, 46, 430_123_456, time.UTC)
	st := &Settlement{
		ID: "01M8EA7K1YA199N2458VJ7AX53", Kind: KindRegistration,
		Wallet: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Status: StatusPending,
		CreatedAt: at, UpdatedAt: at, RegistrationID: "01M8EA7K1YA199N2458RBE4N6G",
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = st.AppendJSON(buf[:0])
		}
	})
}
