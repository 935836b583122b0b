// Package input parses and validates untrusted request input: JSON bodies, wallets, amounts, hashes, idempotency keys and forwarded-for headers.
package input

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinels for errors.Is. Every parser returns an *Error wrapping one of them.
var (
	ErrSyntax         = errors.New("input: malformed JSON")
	ErrType           = errors.New("input: wrong JSON type")
	ErrDuplicateKey   = errors.New("input: duplicate JSON key")
	ErrUnknownField   = errors.New("input: unknown JSON field")
	ErrWallet         = errors.New("input: invalid wallet address")
	ErrChecksum       = fmt.Errorf("%w: EIP-55 checksum mismatch", ErrWallet) // also matches ErrWallet
	ErrAmount         = errors.New("input: invalid amount")
	ErrTxHash         = errors.New("input: invalid transaction hash")
	ErrID             = errors.New("input: invalid ID")
	ErrIdempotencyKey = errors.New("input: invalid Idempotency-Key")
	ErrPrefix         = errors.New("input: invalid trusted proxy prefix")
)

// Error describes rejected input. Its message is safe to show to clients: it
// quotes at most maxEcho bytes of the input and never retains the input itself
// (fasthttp reuses request buffers).
type Error struct {
	Kind   error  // one of the Err* sentinels
	Detail string // what is wrong
	Field  string // JSON key involved, truncated to maxEcho bytes; "" if none
	Offset int    // byte offset into the JSON body; -1 if not applicable
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Detail }
func (e *Error) Unwrap() error { return e.Kind }

// maxEcho bounds how much client input an error message repeats.
const maxEcho = 16

// echo quotes at most maxEcho bytes of b, marking truncation.
func echo(b []byte) string {
	if len(b) <= maxEcho {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:maxEcho])) + "..."
}

func fail(kind error, detail string, in []byte) *Error {
	if in != nil {
		detail += ": " + echo(in)
	}
	return &Error{Kind: kind, Detail: detail, Offset: -1}
}
