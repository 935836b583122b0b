package persistence

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The records' JSON is written by hand: encoding/json.Marshal took about 4%
// of server CPU on the registration path (reflection and allocations). The
// appenders' output is byte-identical to json.Marshal's, so stored records
// and the real backend's request body do not change and json.Unmarshal
// still reads them; the tests (and FuzzRecordJSON) compare the two byte for
// byte. A field added to a record must be added to its appender:
// TestRecordJSONCoversEveryField fails until it is.
//
// Times: json.Marshal refuses a time.Time whose year is outside [0,9999] or
// whose zone offset is 24 hours or more; the appenders cannot fail and write
// such a time in the same layout. Record times never are out of range: they
// come from the clock (UTC) plus bounded durations, or from a record read
// back, which Time.UnmarshalJSON parses as strict RFC 3339.

// AppendJSON appends s as encoding/json.Marshal(s) would.
func (s *Settlement) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, s.ID)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, s.Kind)
	dst = append(dst, `,"wallet":`...)
	dst = appendJSONString(dst, s.Wallet)
	dst = append(dst, `,"status":`...)
	dst = appendJSONString(dst, s.Status)
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(s.Attempts), 10)
	dst = append(dst, `,"nextAttemptAt":`...)
	if s.NextAttemptAt == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONTime(dst, *s.NextAttemptAt)
	}
	dst = append(dst, `,"lastError":`...)
	dst = appendJSONString(dst, s.LastError)
	dst = append(dst, `,"createdAt":`...)
	dst = appendJSONTime(dst, s.CreatedAt)
	dst = append(dst, `,"updatedAt":`...)
	dst = appendJSONTime(dst, s.UpdatedAt)
	dst = appendOmitEmpty(dst, `,"registrationId":`, s.RegistrationID)
	dst = appendOmitEmpty(dst, `,"claimId":`, s.ClaimID)
	dst = appendOmitEmpty(dst, `,"amount":`, s.Amount)
	dst = appendOmitEmpty(dst, `,"txHash":`, s.TxHash)
	dst = appendOmitEmpty(dst, `,"eventId":`, s.EventID)
	dst = appendOmitEmpty(dst, `,"currency":`, s.Currency)
	dst = appendOmitEmpty(dst, `,"traceParent":`, s.TraceParent)
	return append(dst, '}')
}

// AppendJSON appends r as encoding/json.Marshal(r) would.
func (r *Registration) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"registrationId":`...)
	dst = appendJSONString(dst, r.ID)
	dst = append(dst, `,"wallet":`...)
	dst = appendJSONString(dst, r.Wallet)
	dst = append(dst, `,"settlementId":`...)
	dst = appendJSONString(dst, r.SettlementID)
	dst = append(dst, `,"createdAt":`...)
	dst = appendJSONTime(dst, r.CreatedAt)
	return append(dst, '}')
}

// AppendJSON appends c as encoding/json.Marshal(c) would.
func (c *Claim) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"claimId":`...)
	dst = appendJSONString(dst, c.ID)
	dst = append(dst, `,"wallet":`...)
	dst = appendJSONString(dst, c.Wallet)
	dst = append(dst, `,"amount":`...)
	dst = appendJSONString(dst, c.Amount)
	dst = append(dst, `,"nonce":`...)
	dst = appendJSONString(dst, c.Nonce)
	dst = append(dst, `,"expiresAt":`...)
	dst = appendJSONTime(dst, c.ExpiresAt)
	dst = append(dst, `,"signature":`...)
	dst = appendJSONString(dst, c.Signature)
	dst = appendOmitEmpty(dst, `,"txHash":`, c.TxHash)
	dst = appendOmitEmpty(dst, `,"settlementId":`, c.SettlementID)
	// omitzero on a time.Time asks its IsZero method, which ignores the
	// location: a zero instant in any zone is omitted.
	if !c.RecordedAt.IsZero() {
		dst = append(dst, `,"recordedAt":`...)
		dst = appendJSONTime(dst, c.RecordedAt)
	}
	return append(dst, '}')
}

// appendOmitEmpty appends field (`,"name":`) and s unless s is empty.
func appendOmitEmpty(dst []byte, field, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, field...), s)
}

// appendJSONTime appends t as time.Time.MarshalJSON does: quoted RFC 3339
// with nanoseconds, trailing zeros trimmed (see the note on times above).
func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// jsonSafe reports the ASCII bytes encoding/json writes as they are with
// HTML escaping on (its default): all but control characters, '"', '\\',
// '<', '>' and '&'.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

const lowerHex = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json.Marshal
// does. Unlike internal/jsonw.AppendString it escapes <, > and & (as
// \u003c, \u003e, \u0026), U+2028 and U+2029, and writes \b \f \n \r \t
// in short form; invalid UTF-8 becomes \ufffd (escaped, as encoding/json
// writes it).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control characters, <, > and &
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
