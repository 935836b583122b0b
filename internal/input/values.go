package input

import (
	"hash"
	"strings"
	"sync"

	"golang.org/x/crypto/sha3"
)

// AppendWallet validates an EVM address, "0x" and 40 hex digits, and appends its
// lowercase form to dst. All-lowercase or all-uppercase digits are accepted;
// mixed case must pass the EIP-55 checksum. "0X" is rejected. On error dst is
// returned unchanged. Errors wrap ErrWallet or ErrChecksum (which also matches ErrWallet).
func AppendWallet(dst, s []byte) ([]byte, error) {
	n := len(dst)
	dst, upper, lower := appendHexLower(dst, s, 40)
	if upper < 0 {
		return dst[:n], fail(ErrWallet, `want "0x" and 40 hex digits`, s)
	}
	if upper > 0 && lower > 0 && !checksumOK(s[2:], dst[n+2:]) {
		return dst[:n], fail(ErrChecksum, "mixed-case address with a wrong checksum", s)
	}
	return dst, nil
}

// AppendTxHash validates a transaction hash, "0x" and 64 hex digits in any
// case, and appends its lowercase form to dst. On error dst is returned unchanged.
func AppendTxHash(dst, s []byte) ([]byte, error) {
	n := len(dst)
	dst, upper, _ := appendHexLower(dst, s, 64)
	if upper < 0 {
		return dst[:n], fail(ErrTxHash, `want "0x" and 64 hex digits`, s)
	}
	return dst, nil
}

// appendHexLower appends "0x" and the lowercased digits of s if s is "0x" and
// exactly digits hex digits, counting the letters of each case; upper is -1 if not.
func appendHexLower(dst, s []byte, digits int) (_ []byte, upper, lower int) {
	if len(s) != 2+digits || s[0] != '0' || s[1] != 'x' {
		return dst, -1, 0
	}
	dst = append(dst, "0x"...)
	for _, c := range s[2:] {
		switch {
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'f':
			lower++
		case 'A' <= c && c <= 'F':
			upper++
			c += 'a' - 'A'
		default:
			return dst, -1, 0
		}
		dst = append(dst, c)
	}
	return dst, upper, lower
}

// keccak is pooled because a fresh sponge costs an allocation per address.
type keccak struct {
	h   hash.Hash
	sum [32]byte
}

var keccakPool = sync.Pool{New: func() any { return &keccak{h: sha3.NewLegacyKeccak256()} }}

// checksumOK reports whether the 40 digits of mixed follow EIP-55: a letter is
// uppercase exactly when the matching nibble of keccak256(lowercase hex) is >= 8.
func checksumOK(mixed, lower []byte) bool {
	k := keccakPool.Get().(*keccak)
	defer keccakPool.Put(k)
	k.h.Reset()
	k.h.Write(lower)
	sum := k.h.Sum(k.sum[:0])
	for i, c := range mixed {
		if c < 'A' { // a decimal digit has no case
			continue
		}
		nibble := sum[i/2] >> 4
		if i%2 == 1 {
			nibble = sum[i/2] & 0xf
		}
		if (c <= 'F') != (nibble >= 8) {
			return false
		}
	}
	return true
}

// maxAmount is 2^256-1, the largest uint256.
const maxAmount = "115792089237316195423570985008687907853269984665640564039457584007913129639935"

// Amount validates a positive integer in base units: ASCII digits only, no
// sign, no leading zero, not zero, at most 2^256-1.
func Amount(s []byte) error {
	switch {
	case len(s) == 0:
		return fail(ErrAmount, "empty", nil)
	case !allDigits(s):
		return fail(ErrAmount, "want a positive integer in base units", s)
	case s[0] == '0':
		return fail(ErrAmount, "zero or leading zero", s)
	case len(s) > len(maxAmount) || len(s) == len(maxAmount) && string(s) > maxAmount:
		return fail(ErrAmount, "larger than 2^256-1", s)
	}
	return nil
}

func allDigits(s []byte) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ID validates an ID as the service issues them: a ULID, 26 characters of
// uppercase Crockford base32 whose first is 0-7 (the top of a 128-bit value).
func ID(s []byte) error {
	if len(s) != 26 || s[0] > '7' {
		return fail(ErrID, "want a 26-character ULID", s)
	}
	for _, c := range s {
		if strings.IndexByte(crockford, c) < 0 {
			return fail(ErrID, "want a 26-character ULID", s)
		}
	}
	return nil
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
