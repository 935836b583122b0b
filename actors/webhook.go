package actors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/internal/jsonw"
	"github.com/sgeplatform/sge/internal/problem"
	"github.com/sgeplatform/sge/persistence"
)

// Commerce event types with an effect.
const (
	ChargeConfirmed = "charge:confirmed"
	ChargePending   = "charge:pending"
	ChargeFailed    = "charge:failed"
)

// Webhook results, as answered and counted.
const (
	WebhookProcessed = "processed" // the event's effect is durable
	WebhookDuplicate = "duplicate" // the event id was already handled: nothing done
	WebhookIgnored   = "ignored"   // acknowledged, remembered, no effect (no wallet, no effect for its type)
)

// WebhookEvent is a verified Commerce event, reduced to what the gateway
// acts on. The transport fills it; the actor sets Result.
type WebhookEvent struct {
	ID   string // event.id, the dedupe key (also Request.Key)
	Type string // event.type, as sent
	// ChargeID and ChargeCode identify the charge (event.data.id, .code).
	ChargeID, ChargeCode string
	// Amount and Currency are the price a payment settles: the charge's
	// pricing.settlement when Commerce sent one, else pricing.local. Empty
	// when neither was usable.
	Amount, Currency string
	// OccurredAt is event.created_at as sent.
	OccurredAt string
	// WalletInvalid is the metadata.wallet value when it was present but not
	// a valid address (for the log); Request.Wallet is then empty.
	WalletInvalid string

	// Result is set with the answer: WebhookProcessed, WebhookDuplicate or
	// WebhookIgnored; empty when the delivery failed and should be retried.
	Result string
}

// webhookLocks reserves event ids while one of them is being decided and
// committed. The dedupe record is global but the actors are per wallet: an
// event id arriving for two wallets (or for a wallet and for none) would
// otherwise be checked by two actors at once. Every read-decide-write of
// g/webhook/<id> (actor step, wallet-less path, purge) holds the reservation
// until its batch is committed.
type webhookLocks struct {
	mu struct {
		sync.Mutex
		held map[string]struct{}
	}
}

func (l *webhookLocks) reserve(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.mu.held[id]; busy {
		return false
	}
	if l.mu.held == nil {
		l.mu.held = make(map[string]struct{})
	}
	l.mu.held[id] = struct{}{}
	return true
}

func (l *webhookLocks) release(id string) {
	l.mu.Lock()
	delete(l.mu.held, id)
	l.mu.Unlock()
}

// webhookRecord reads the dedupe record of id; found is false when there is
// none or it has expired.
func (s *System) webhookRecord(id string, now time.Time) (rec persistence.WebhookDedupe, found bool, err error) {
	v, err := s.store.Get(nil, persistence.AppendWebhookKey(nil, id))
	if errors.Is(err, persistence.ErrNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, errors.Join(persistence.ErrCorrupt, err)
	}
	return rec, rec.ExpiresAt > now.UnixNano(), nil
}

// putWebhookRecord writes the dedupe record and its expiry entry into b.
func (s *System) putWebhookRecord(b *pebble.Batch, id string, rec *persistence.WebhookDedupe, now time.Time) error {
	rec.ExpiresAt = now.Add(s.cfg.WebhookDedupeTTL).UnixNano()
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_ = b.Set(persistence.AppendWebhookKey(nil, id), v, nil)
	return b.Set(persistence.AppendWebhookExpiryKey(nil, rec.ExpiresAt, id), nil, nil)
}

// webhookAnswer writes the 200 answer: {"eventId","result"[,"settlementId"]}.
func webhookAnswer(r *Request, result, settlementID string) {
	r.Webhook.Result = result
	r.Status, r.Problem, r.Idempotency = 200, false, IdemNone
	body := jsonw.AppendStrings(append(r.Body[:0], '{'), "eventId", r.Webhook.ID, "result", result)
	if settlementID != "" {
		body = jsonw.AppendStrings(body, "settlementId", settlementID)
	}
	r.Body = append(body, '}')
}

func webhookBusy(r *Request) {
	r.Status, r.Problem = 503, true
	r.Body = problem.Append(r.Body[:0], 503, "webhook-in-progress", "Service Unavailable",
		"this event is being processed by another delivery; retry later")
}

// webhook is the wallet actor's step for an OpWebhook request: dedupe check
// inside the step (under the event's reservation), then one synced batch with
// the dedupe record and the effect; the answer goes out once it is durable.
func (a *walletActor) webhook(r *Request) {
	ev := r.Webhook
	if !a.sys.webhooks.reserve(ev.ID) {
		webhookBusy(r)
		a.answer(r)
		return
	}
	submitted := false
	defer func() {
		if !submitted {
			a.sys.webhooks.release(ev.ID)
		}
	}()
	now := a.sys.now()
	rec, found, err := a.sys.webhookRecord(ev.ID, now)
	if err != nil {
		a.storageFailure(r, "read", err)
		return
	}
	if found {
		webhookAnswer(r, WebhookDuplicate, rec.SettlementID)
		a.answer(r)
		return
	}

	b := a.sys.store.DB().NewBatch()
	c := &commit{pid: a.self, sys: a.sys, op: OpWebhook, key: r.Key, fp: r.Fingerprint, first: r, prev: a.buckets, webhook: ev.ID}
	result, settlementID, err := a.webhookEffect(r, b, now, c)
	if err == nil {
		rec = persistence.WebhookDedupe{Wallet: a.wallet, Type: ev.Type, Result: result, SettlementID: settlementID}
		err = a.sys.putWebhookRecord(b, ev.ID, &rec, now)
	}
	if err != nil {
		_ = b.Close()
		a.storageFailure(r, "read", err)
		return
	}
	webhookAnswer(r, result, settlementID)
	a.inflight = c
	submitted = true
	a.sys.store.Submit(b, c)
}

// webhookEffect writes the effect of ev's type into b: a payment settlement
// for charge:confirmed; a record on the wallet for confirmed, pending and
// failed; nothing for other types.
func (a *walletActor) webhookEffect(r *Request, b *pebble.Batch, now time.Time, c *commit) (result, settlementID string, err error) {
	ev := r.Webhook
	switch ev.Type {
	case ChargeConfirmed, ChargePending, ChargeFailed:
	default:
		return WebhookIgnored, "", nil
	}
	rec := persistence.WebhookEvent{
		EventID: ev.ID, Type: ev.Type, Wallet: a.wallet, ChargeID: ev.ChargeID, ChargeCode: ev.ChargeCode,
		OccurredAt: ev.OccurredAt, ReceivedAt: now.UTC(),
	}
	result = WebhookProcessed
	if ev.Type == ChargeConfirmed {
		if ev.Amount == "" {
			// Money was received but we cannot say how much: record it for
			// a human, create nothing that would settle a wrong amount.
			a.sys.log.Error("charge:confirmed without a usable price; recorded, no settlement",
				"eventId", ev.ID, "wallet", a.wallet, "charge", ev.ChargeCode)
			result = WebhookIgnored
		} else {
			st := a.newSettlement(r, ids.New(now), persistence.KindPayment, now)
			st.EventID, st.Amount, st.Currency = ev.ID, ev.Amount, ev.Currency
			if err := a.putSettlement(b, st, c); err != nil {
				return "", "", err
			}
			settlementID = st.ID
			c.webhookSettlement = st.ID
			rec.Amount, rec.Currency, rec.SettlementID = ev.Amount, ev.Currency, st.ID
		}
	}
	// Webhook events are few: encoding/json is fast enough for them.
	v, err := json.Marshal(rec)
	if err != nil {
		return "", "", err
	}
	if err := a.putRecord(b, persistence.TagWebhookEvent, ev.ID, v); err != nil {
		return "", "", err
	}
	return result, settlementID, nil
}

// finishWebhookDups answers deliveries that waited for the commit of the
// same event: they caused nothing, and point at the first one's settlement.
func finishWebhookDups(c *commit) {
	for _, r := range c.dups {
		webhookAnswer(r, WebhookDuplicate, c.webhookSettlement)
	}
}

// webhookUnrouted handles an event that names no valid wallet: it is
// remembered (so a redelivery is a duplicate) and has no effect. There is no
// wallet actor to serialize it, so the event's reservation does, and the
// caller blocks on the group commit.
func (s *System) webhookUnrouted(r *Request) {
	ev := r.Webhook
	if !s.webhooks.reserve(ev.ID) {
		webhookBusy(r)
		return
	}
	defer s.webhooks.release(ev.ID)
	now := s.now()
	rec, found, err := s.webhookRecord(ev.ID, now)
	if err == nil && found {
		webhookAnswer(r, WebhookDuplicate, rec.SettlementID)
		return
	}
	if err == nil {
		b := s.store.DB().NewBatch()
		rec = persistence.WebhookDedupe{Type: ev.Type, Result: WebhookIgnored}
		if err = s.putWebhookRecord(b, ev.ID, &rec, now); err != nil {
			_ = b.Close()
		} else {
			err = s.store.Commit(b)
		}
	}
	if err != nil {
		if !errors.Is(err, persistence.ErrClosed) {
			s.cfg.Observer.StorageError("commit")
		}
		s.log.Error("storage", "op", "webhook", "eventId", ev.ID, "err", err)
		r.Status, r.Problem = 503, true
		r.Body = problem.Append(r.Body[:0], 503, "storage-unavailable", "Service Unavailable",
			"storage is temporarily unavailable; retry later")
		return
	}
	s.log.Warn("webhook event names no valid wallet; acknowledged without effect",
		"eventId", ev.ID, "type", ev.Type, "charge", ev.ChargeCode, "metadataWallet", ev.WalletInvalid)
	webhookAnswer(r, WebhookIgnored, "")
}

// PurgeExpiredWebhooks deletes webhook dedupe records whose retention has
// passed, and their expiry entries. A record is deleted only if it still
// carries the indexed expiry, and only while the event's reservation is
// held, so it cannot race a delivery rewriting it; an event in flight is
// left for the next run.
func (s *System) PurgeExpiredWebhooks() (int, error) {
	if s.store.Broken() {
		return 0, persistence.ErrBroken
	}
	now := s.now()
	upper := persistence.AppendWebhookExpiryKey(nil, now.UnixNano(), "")
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixWebhookExpiry, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	b := s.store.DB().NewBatch()
	defer func() {
		if b != nil {
			_ = b.Close()
		}
	}()
	for it.First(); it.Valid(); it.Next() {
		ik := it.Key()
		rest := ik[len(persistence.PrefixWebhookExpiry):]
		if len(rest) < 9 {
			_ = b.Delete(ik, nil)
			continue
		}
		at := int64(binary.BigEndian.Uint64(rest))
		id := string(rest[9:])
		if !s.webhooks.reserve(id) {
			continue
		}
		rk := persistence.AppendWebhookKey(nil, id)
		if v, gerr := s.store.Get(nil, rk); gerr == nil {
			var rec persistence.WebhookDedupe
			if json.Unmarshal(v, &rec) == nil && rec.ExpiresAt == at {
				_ = b.Delete(rk, nil)
				n++
			}
		}
		_ = b.Delete(ik, nil)
		// Commit before releasing: a delivery that reserves the id next must
		// not see a record this batch is about to delete.
		err := s.store.Write(b) // closes b
		b = nil
		s.webhooks.release(id)
		if err != nil {
			return n, err
		}
		b = s.store.DB().NewBatch()
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	err, b = s.store.Write(b), nil // malformed index entries
	return n, err
}
