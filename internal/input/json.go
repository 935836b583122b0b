package input

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// DecodeObject parses body as exactly one JSON object whose values are all JSON
// strings (RFC 8259, UTF-8 validated, escapes including surrogate pairs decoded).
// For each key equal to names[i] the unescaped value is stored in vals[i], which
// must have len(names) elements. Values alias body when they contain no escapes,
// otherwise they are appended to scratch; the grown scratch is returned for reuse,
// and values stay valid until body or scratch is reused. Absent keys leave vals[i] nil.
//
// Errors: ErrSyntax (malformed, truncated, trailing data, empty body, not an
// object, invalid UTF-8, lone surrogate), ErrType (a value that is not a string),
// ErrDuplicateKey, ErrUnknownField (a key not in names). A non-string value is
// rejected where it starts, without reading it, so nesting costs nothing.
// On error vals holds whatever was decoded before it. Zero allocations on
// success when no escapes are present.
func DecodeObject(body []byte, names []string, vals [][]byte, scratch []byte) ([]byte, error) {
	vals = vals[:len(names)] // a short vals is a caller bug: panic
	clear(vals)

	i := skipSpace(body, 0)
	if i == len(body) {
		return scratch, syntaxErr(body, i, "empty body")
	}
	if body[i] != '{' {
		return scratch, syntaxErr(body, i, "want a JSON object")
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return scratch, trailing(body, i+1)
	}
	for {
		if i == len(body) || body[i] != '"' {
			return scratch, syntaxErr(body, i, "want a string key")
		}
		mark := len(scratch)
		keyAt := i
		var key []byte
		var err *Error
		key, i, scratch, err = readString(body, i, scratch)
		if err != nil {
			return scratch, err
		}
		k := lookup(names, key)
		switch {
		case k < 0:
			return scratch, fieldErr(ErrUnknownField, key, keyAt, "unknown field ")
		case vals[k] != nil:
			return scratch, fieldErr(ErrDuplicateKey, key, keyAt, "duplicate key ")
		}
		scratch = scratch[:mark] // the key is no longer needed

		i = skipSpace(body, i)
		if i == len(body) || body[i] != ':' {
			return scratch, syntaxErr(body, i, "want ':' after key")
		}
		i = skipSpace(body, i+1)
		if i == len(body) || body[i] != '"' {
			return scratch, valueErr(body, i, key)
		}
		vals[k], i, scratch, err = readString(body, i, scratch)
		if err != nil {
			return scratch, err
		}

		i = skipSpace(body, i)
		switch {
		case i == len(body):
			return scratch, syntaxErr(body, i, "want ',' or '}'")
		case body[i] == '}':
			return scratch, trailing(body, i+1)
		case body[i] != ',':
			return scratch, syntaxErr(body, i, "want ',' or '}'")
		}
		i = skipSpace(body, i+1)
	}
}

func lookup(names []string, key []byte) int {
	for k, n := range names {
		if n == string(key) { // no allocation: the compiler compares in place
			return k
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func trailing(body []byte, i int) error {
	if i = skipSpace(body, i); i != len(body) {
		return syntaxErr(body, i, "trailing data after object")
	}
	return nil
}

// readString reads the JSON string whose opening quote is body[i]. It returns the
// unescaped value, capped so appends cannot clobber what follows it, the offset
// after the closing quote, and the grown scratch.
func readString(body []byte, i int, scratch []byte) ([]byte, int, []byte, *Error) {
	start := i + 1
	mark, lit, escaped := len(scratch), start, false
	for j := start; j < len(body); {
		switch c := body[j]; {
		case c == '"':
			if !escaped {
				return body[start:j:j], j + 1, scratch, nil
			}
			scratch = append(scratch, body[lit:j]...)
			return scratch[mark:len(scratch):len(scratch)], j + 1, scratch, nil
		case c == '\\':
			r, n := unescape(body[j:])
			if n == 0 {
				return nil, 0, scratch, syntaxErr(body, j, "invalid escape")
			}
			scratch = utf8.AppendRune(append(scratch, body[lit:j]...), r)
			escaped = true
			j += n
			lit = j
		case c < 0x20:
			return nil, 0, scratch, syntaxErr(body, j, "control character in string")
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(body[j:])
			if r == utf8.RuneError && n == 1 {
				return nil, 0, scratch, syntaxErr(body, j, "invalid UTF-8")
			}
			j += n
		}
	}
	return nil, 0, scratch, syntaxErr(body, len(body), "unterminated string")
}

// unescape decodes the escape sequence at the start of b, returning the rune
// and the bytes consumed, or n == 0 if it is invalid. Lone surrogates are
// invalid: they cannot be encoded as UTF-8.
func unescape(b []byte) (r rune, n int) {
	if len(b) < 2 {
		return 0, 0
	}
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r = hex4(b[2:])
		switch {
		case r < 0 || (0xDC00 <= r && r <= 0xDFFF):
			return 0, 0
		case r < 0xD800 || r > 0xDBFF:
			return r, 6
		}
		if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
			return 0, 0
		}
		lo := hex4(b[8:])
		if lo < 0xDC00 || lo > 0xDFFF {
			return 0, 0
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12
	}
	return 0, 0
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		d := unhex(c)
		if d < 0 {
			return -1
		}
		r = r<<4 | rune(d)
	}
	return r
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func syntaxErr(body []byte, i int, what string) *Error {
	d := what + " at offset " + strconv.Itoa(i)
	if i < len(body) {
		d += " near " + echo(body[i:])
	}
	return &Error{Kind: ErrSyntax, Detail: d, Offset: i}
}

func fieldErr(kind error, key []byte, at int, what string) *Error {
	return &Error{Kind: kind, Detail: what + echo(key), Field: truncate(key), Offset: at}
}

// valueErr reports the value at body[i], which is not a string.
func valueErr(body []byte, i int, key []byte) *Error {
	var got string
	rest := string(body[i:min(i+5, len(body))]) // no allocation: it does not escape
	switch {
	case rest == "":
		return syntaxErr(body, i, "want a value")
	case rest[0] == '{':
		got = "object"
	case rest[0] == '[':
		got = "array"
	case strings.HasPrefix(rest, "true") || rest == "false":
		got = "boolean"
	case strings.HasPrefix(rest, "null"):
		got = "null"
	case rest[0] == '-' || ('0' <= rest[0] && rest[0] <= '9'):
		got = "number"
	default:
		return syntaxErr(body, i, "want a value")
	}
	return &Error{Kind: ErrType, Detail: "field " + echo(key) + " must be a string, not " + got,
		Field: truncate(key), Offset: i}
}

func truncate(b []byte) string { return string(b[:min(len(b), maxEcho)]) }
