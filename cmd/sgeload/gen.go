package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
)

// newRNG gives each worker its own generator, so generating wallets, hashes and keys
// takes no lock. Seeded from crypto/rand: two runs never reuse keys or wallets.
func newRNG() *rand.ChaCha8 {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (documented)
	return rand.NewChaCha8(seed)
}

// appendHex appends 2n random lowercase hex digits (n ≤ 32).
func appendHex(dst []byte, r *rand.ChaCha8, n int) []byte {
	var raw [32]byte
	_, _ = r.Read(raw[:n])
	return hex.AppendEncode(dst, raw[:n])
}

// appendWallet appends a random EVM address. All lowercase, so no EIP-55 checksum applies.
func appendWallet(dst []byte, r *rand.ChaCha8) []byte { return appendHex(append(dst, "0x"...), r, 20) }

// appendTxHash appends a random transaction hash, 0x + 64 hex.
func appendTxHash(dst []byte, r *rand.ChaCha8) []byte { return appendHex(append(dst, "0x"...), r, 32) }

// appendKey appends a fresh Idempotency-Key: 128 random bits, visible ASCII.
func appendKey(dst []byte, r *rand.ChaCha8) []byte { return appendHex(dst, r, 16) }

// appendIPv4 appends the address n steps after base (wrapping), for X-Forwarded-For.
func appendIPv4(dst []byte, base netip.Addr, n uint32) []byte {
	b := base.As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+n)
	return netip.AddrFrom4(b).AppendTo(dst)
}
