package main

import (
	"bytes"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/persistence"
	"github.com/valyala/fasthttp"
)

// The durable baseline (-scenario durable) is the bare baseline server plus,
// for every request, one synced commit of what a registration writes,
// through sged's own store and group committer: no actors, no rate limits,
// no idempotency lookup, no settlement. It is the most a durable MISS could
// reach on this machine with this store, measured like the other baselines.

// durableStoreEnv names the directory the baseline child keeps its store in;
// unset, the child is the bare baseline.
const durableStoreEnv = "SGELOAD_BASELINE_STORE"

// durableWALEnv names the directory that store keeps its WAL in (-wal-dir);
// empty: beside the store.
const durableWALEnv = "SGELOAD_BASELINE_WAL"

// Sizes of the values sged writes for one registration (read from a store
// after a register run, 2026-11-27): the idempotency record, the
// registration, the settlement and the wallet's two token buckets. The
// settlement's locator and due entry hold the wallet; the record's expiry
// entry holds nothing.
const (
	recordBytes       = 247
	registrationBytes = 190
	settlementBytes   = 315
	bucketsBytes      = 32
)

// filler is JSON text to cut values from, so that they compress in Pebble's
// tables about as sged's JSON records do (zeros would compress to nothing).
var filler = bytes.Repeat(baselineAnswer, 2)

// appendRegistration adds to b the seven keys sged commits for a new
// registration of wallet under idempotency key, in sged's key layout.
func appendRegistration(b *pebble.Batch, wallet, key []byte, now time.Time) {
	regID, setID := ids.Append(nil, now), ids.Append(nil, now)
	set := func(k, v []byte) { _ = b.Set(k, v, nil) } // Set fails only on a committed batch
	set(persistence.AppendIdempotencyKey(nil, wallet, "register", key), filler[:recordBytes])
	set(persistence.AppendExpiryKey(nil, now.Add(24*time.Hour).UnixNano(), wallet, "register", key), nil)
	set(persistence.AppendWalletKey(nil, wallet, persistence.TagRegistration, regID), filler[:registrationBytes])
	set(persistence.AppendWalletKey(nil, wallet, persistence.TagSettlement, setID), filler[:settlementBytes])
	set(persistence.AppendSettlementLocator(nil, setID), wallet)
	set(persistence.AppendDueKey(nil, now.UnixNano(), setID), wallet)
	set(persistence.AppendWalletKey(nil, wallet, persistence.TagBuckets), filler[:bucketsBytes])
}

// durableHandler answers as the bare baseline does once the request's
// registration is durable in s: the wallet from the body, the key from the
// Idempotency-Key header.
func durableHandler(s *persistence.Store) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		wallet := jsonField(ctx.PostBody(), walletField)
		key := ctx.Request.Header.Peek("Idempotency-Key")
		if len(wallet) == 0 || len(key) == 0 {
			ctx.Error("wallet and Idempotency-Key are required", fasthttp.StatusBadRequest)
			return
		}
		b := s.DB().NewBatch()
		appendRegistration(b, wallet, key, time.Now())
		if err := s.Commit(b); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusServiceUnavailable)
			return
		}
		answerBaseline(ctx)
	}
}
