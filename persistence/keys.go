package persistence

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
)

// Key layout (FormatVersion 1). Every key is printable ASCII except the
// 8-byte big-endian timestamps in the global indexes, which sort by time.
//
//	meta/format                              format version ("1")
//	meta/claim-signing-key                   generated ed25519 seed (absent when configured)
//	w/<ss>/<wallet>/b                        the wallet's token buckets
//	w/<ss>/<wallet>/c/<claimId>              claim ticket (+ recorded txHash)
//	w/<ss>/<wallet>/e/<eventId>              Commerce webhook event recorded on the wallet
//	w/<ss>/<wallet>/i/<route>/<key>          idempotency record
//	w/<ss>/<wallet>/r/<registrationId>       registration
//	w/<ss>/<wallet>/s/<settlementId>         settlement
//	g/settlement/<settlementId>              → wallet: locates a settlement by id
//	g/due/<t8>/<settlementId>                settlement waiting to run at t
//	g/dead/<settlementId>                    dead letter
//	g/expiry/<t8>/<wallet>/<route>/<key>     idempotency record expiring at t
//	g/ip/<addr>                              IP bucket snapshot
//	g/webhook/<eventId>                      processed webhook event (dedupe), with its expiry
//	g/webhook-expiry/<t8>/<eventId>          webhook dedupe record expiring at t
//
// <wallet> is the lowercase "0x…" address and <ss> its shard: CRC-32 (IEEE)
// of that string mod 256 as two hex digits. A wallet's whole state is the
// range w/<ss>/<wallet>/, a shard's the range w/<ss>/: both can be read,
// moved or deleted as one. Global indexes only point into those ranges.
var (
	KeyFormat     = []byte("meta/format")
	KeySigningKey = []byte("meta/claim-signing-key")

	// Prefixes of the global indexes.
	PrefixSettlement = []byte("g/settlement/")
	PrefixDue        = []byte("g/due/")
	PrefixDead       = []byte("g/dead/")
	PrefixExpiry     = []byte("g/expiry/")
	PrefixIP         = []byte("g/ip/")
	PrefixWebhook    = []byte("g/webhook/")
	// PrefixWebhookExpiry sorts apart from PrefixWebhook ('-' < '/'), so a
	// scan of either never sees the other.
	PrefixWebhookExpiry = []byte("g/webhook-expiry/")
)

// Record kinds inside a wallet range.
const (
	TagBuckets      = 'b'
	TagClaim        = 'c'
	TagWebhookEvent = 'e'
	TagIdempotency  = 'i'
	TagRegistration = 'r'
	TagSettlement   = 's'
)

// Shard is the wallet's shard number: CRC-32 of the lowercase address mod 256.
func Shard(wallet []byte) uint8 { return uint8(crc32.ChecksumIEEE(wallet)) }

// AppendWalletPrefix appends "w/<ss>/<wallet>/".
func AppendWalletPrefix(dst, wallet []byte) []byte {
	s := Shard(wallet)
	dst = append(dst, 'w', '/')
	dst = hex.AppendEncode(dst, []byte{s})
	dst = append(dst, '/')
	dst = append(dst, wallet...)
	return append(dst, '/')
}

// AppendShardPrefix appends "w/<ss>/", the start of a shard's range.
func AppendShardPrefix(dst []byte, shard uint8) []byte {
	dst = append(dst, 'w', '/')
	dst = hex.AppendEncode(dst, []byte{shard})
	return append(dst, '/')
}

// AppendWalletKey appends "w/<ss>/<wallet>/<tag>" and, when parts are given,
// "/<part>" for each.
func AppendWalletKey(dst, wallet []byte, tag byte, parts ...[]byte) []byte {
	dst = AppendWalletPrefix(dst, wallet)
	dst = append(dst, tag)
	for _, p := range parts {
		dst = append(dst, '/')
		dst = append(dst, p...)
	}
	return dst
}

// AppendIdempotencyKey appends the key of the idempotency record for
// (wallet, route, key).
func AppendIdempotencyKey(dst, wallet []byte, route string, key []byte) []byte {
	dst = AppendWalletPrefix(dst, wallet)
	dst = append(dst, TagIdempotency, '/')
	dst = append(dst, route...)
	dst = append(dst, '/')
	return append(dst, key...)
}

// AppendExpiryKey appends the expiry-index key of an idempotency record.
func AppendExpiryKey(dst []byte, at int64, wallet []byte, route string, key []byte) []byte {
	dst = append(dst, PrefixExpiry...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	dst = append(dst, '/')
	dst = append(dst, wallet...)
	dst = append(dst, '/')
	dst = append(dst, route...)
	dst = append(dst, '/')
	return append(dst, key...)
}

// ParseExpiryKey splits an expiry-index key into its record's expiry and
// (wallet, route, key); ok is false for a key of another shape.
func ParseExpiryKey(ik []byte) (at int64, wallet []byte, route string, key []byte, ok bool) {
	rest, found := bytes.CutPrefix(ik, PrefixExpiry)
	if !found || len(rest) < 9 || rest[8] != '/' {
		return 0, nil, "", nil, false
	}
	at = int64(binary.BigEndian.Uint64(rest))
	wallet, rest, found = bytes.Cut(rest[9:], []byte{'/'})
	if !found {
		return 0, nil, "", nil, false
	}
	r, key, found := bytes.Cut(rest, []byte{'/'})
	if !found {
		return 0, nil, "", nil, false
	}
	return at, wallet, string(r), key, true
}

// AppendSettlementLocator appends "g/settlement/<id>".
func AppendSettlementLocator(dst, id []byte) []byte {
	return append(append(dst, PrefixSettlement...), id...)
}

// AppendDueKey appends "g/due/<t8>/<id>".
func AppendDueKey(dst []byte, at int64, id []byte) []byte {
	dst = append(dst, PrefixDue...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	dst = append(dst, '/')
	return append(dst, id...)
}

// TimeBound is the first key an entry of the time-ordered index under
// prefix (PrefixDue, PrefixExpiry) can have at time at: entries before at sort
// below it, entries at or after at above. Iterators take it as a bound.
func TimeBound(prefix []byte, at int64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(at))
}

// AppendDeadKey appends "g/dead/<id>".
func AppendDeadKey(dst, id []byte) []byte { return append(append(dst, PrefixDead...), id...) }

// AppendIPKey appends "g/ip/<addr>".
func AppendIPKey(dst []byte, addr string) []byte { return append(append(dst, PrefixIP...), addr...) }

// AppendWebhookKey appends "g/webhook/<eventId>".
func AppendWebhookKey(dst []byte, eventID string) []byte {
	return append(append(dst, PrefixWebhook...), eventID...)
}

// AppendWebhookExpiryKey appends "g/webhook-expiry/<t8>/<eventId>".
func AppendWebhookExpiryKey(dst []byte, at int64, eventID string) []byte {
	dst = append(dst, PrefixWebhookExpiry...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	dst = append(dst, '/')
	return append(dst, eventID...)
}

// PrefixEnd returns the smallest key greater than every key with prefix p.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
