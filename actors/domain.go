package actors

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/internal/jsonw"
	"github.com/sgeplatform/sge/internal/problem"
	"github.com/sgeplatform/sge/persistence"
)

// domain runs r's domain step: it writes the effect's records into b and the
// answer into r. effect reports whether anything was written; a refusal
// (404/409/410) writes nothing but is still an answer worth storing under
// the request's idempotency key.
func (a *walletActor) domain(r *Request, b *pebble.Batch, now time.Time, c *commit) (effect bool, err error) {
	switch r.Op {
	case OpRegister:
		return true, a.register(r, b, now, c)
	case OpClaimPrepare:
		return true, a.prepare(r, b, now)
	case OpClaimRecord:
		return a.record(r, b, now, c)
	}
	return false, errors.New("actors: unknown operation")
}

func (a *walletActor) register(r *Request, b *pebble.Batch, now time.Time, c *commit) error {
	reg := persistence.Registration{
		ID:           ids.New(now),
		Wallet:       a.wallet,
		SettlementID: ids.New(now),
		CreatedAt:    now.UTC(),
	}
	st := a.newSettlement(r, reg.SettlementID, persistence.KindRegistration, now)
	st.RegistrationID = reg.ID
	if err := a.putRecord(b, persistence.TagRegistration, reg.ID, reg.AppendJSON(a.valBuf[:0])); err != nil {
		return err
	}
	if err := a.putSettlement(b, st, c); err != nil {
		return err
	}
	r.Status = 201
	body := jsonw.AppendStrings(append(r.Body[:0], '{'),
		"registrationId", reg.ID, "wallet", a.wallet, "settlementId", st.ID, "status", st.Status)
	body = jsonw.AppendField(body, "createdAt")
	body = jsonw.AppendTime(body, now)
	r.Body = append(body, '}')
	return nil
}

// ClaimMessage is what a claim ticket's signature covers: the ticket's fields
// as they appear in the answer, one per line, after a fixed tag.
func ClaimMessage(claimID, wallet, amount, nonce, expiresAt string) []byte {
	m := make([]byte, 0, 160)
	m = append(m, "sge-claim-v1\n"...)
	for _, f := range []string{claimID, wallet, amount, nonce, expiresAt} {
		m = append(append(m, f...), '\n')
	}
	return m[:len(m)-1]
}

func (a *walletActor) prepare(r *Request, b *pebble.Batch, now time.Time) error {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	cl := persistence.Claim{
		ID:        ids.New(now),
		Wallet:    a.wallet,
		Amount:    string(r.Amount),
		Nonce:     "0x" + hex.EncodeToString(nonce[:]),
		ExpiresAt: now.Add(a.sys.cfg.ClaimTTL).UTC().Truncate(time.Millisecond),
	}
	expires := cl.ExpiresAt.Format(jsonw.TimeLayout)
	cl.Signature = base64.StdEncoding.EncodeToString(
		ed25519.Sign(a.sys.signer, ClaimMessage(cl.ID, cl.Wallet, cl.Amount, cl.Nonce, expires)))
	if err := a.putRecord(b, persistence.TagClaim, cl.ID, cl.AppendJSON(a.valBuf[:0])); err != nil {
		return err
	}
	r.Status = 201
	body := jsonw.AppendStrings(append(r.Body[:0], '{'),
		"claimId", cl.ID, "wallet", cl.Wallet, "amount", cl.Amount,
		"nonce", cl.Nonce, "expiresAt", expires, "signature", cl.Signature)
	r.Body = append(body, '}')
	return nil
}

func (a *walletActor) record(r *Request, b *pebble.Batch, now time.Time, c *commit) (bool, error) {
	key := persistence.AppendWalletKey(a.keyBuf[:0], a.walletB, persistence.TagClaim, r.ClaimID)
	v, err := a.sys.store.Get(a.valBuf[:0], key)
	a.valBuf = v[:0]
	if errors.Is(err, persistence.ErrNotFound) {
		a.refuse(r, 404, "claim-not-found", "Not Found", "no claim with this claimId for this wallet")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var cl persistence.Claim
	if err := json.Unmarshal(v, &cl); err != nil {
		return false, errors.Join(persistence.ErrCorrupt, err)
	}
	switch {
	case cl.TxHash != "" && cl.TxHash != string(r.TxHash):
		a.refuse(r, 409, "claim-already-recorded", "Conflict", "this claim is already recorded with another txHash")
		return false, nil
	case cl.TxHash != "":
		// The same transaction again: the first answer, byte for byte, and no
		// new effect. The settlement's progress is at /api/settlements/{id}.
		a.recordAnswer(r, &cl, persistence.StatusPending)
		return false, nil
	case !now.Before(cl.ExpiresAt):
		a.refuse(r, 410, "claim-expired", "Gone", "this claim ticket has expired; prepare a new one")
		return false, nil
	}
	cl.TxHash = string(r.TxHash)
	cl.SettlementID = ids.New(now)
	cl.RecordedAt = now.UTC()
	st := a.newSettlement(r, cl.SettlementID, persistence.KindClaim, now)
	st.ClaimID, st.Amount, st.TxHash = cl.ID, cl.Amount, cl.TxHash
	if err := a.putRecord(b, persistence.TagClaim, cl.ID, cl.AppendJSON(a.valBuf[:0])); err != nil {
		return false, err
	}
	if err := a.putSettlement(b, st, c); err != nil {
		return false, err
	}
	a.recordAnswer(r, &cl, st.Status)
	return true, nil
}

func (a *walletActor) recordAnswer(r *Request, cl *persistence.Claim, status string) {
	r.Status, r.Problem = 201, false
	body := jsonw.AppendStrings(append(r.Body[:0], '{'),
		"claimId", cl.ID, "wallet", cl.Wallet, "txHash", cl.TxHash,
		"settlementId", cl.SettlementID, "status", status)
	r.Body = append(body, '}')
}

func (a *walletActor) refuse(r *Request, status int, slug, title, detail string) {
	r.Status, r.Problem = status, true
	r.Body = problem.Append(r.Body[:0], status, slug, title, detail)
}

func (a *walletActor) newSettlement(r *Request, id, kind string, now time.Time) *persistence.Settlement {
	return &persistence.Settlement{
		ID: id, Kind: kind, Wallet: a.wallet, Status: persistence.StatusPending,
		CreatedAt: now.UTC(), UpdatedAt: now.UTC(), TraceParent: string(r.TraceParent),
	}
}

// putSettlement writes a new pending settlement, its locator and its due
// entry; the settlement supervisor takes it from there once it is durable.
func (a *walletActor) putSettlement(b *pebble.Batch, st *persistence.Settlement, c *commit) error {
	if err := PutSettlement(b, st, st.CreatedAt); err != nil {
		return err
	}
	c.created = append(c.created, st)
	return nil
}

// PutSettlement writes st (record and locator) and a due entry for at into b.
// at must be st.CreatedAt, or st.NextAttemptAt must point at it: the
// settlement actor finds its due entry from the record (see Supervisor).
func PutSettlement(b *pebble.Batch, st *persistence.Settlement, at time.Time) error {
	if err := setSettlement(b, st); err != nil {
		return err
	}
	p := getScratch()
	buf := append((*p)[:0], st.Wallet...)
	w := len(buf)
	buf = persistence.AppendSettlementLocator(buf, []byte(st.ID))
	_ = b.Set(buf[w:], buf[:w], nil)
	buf = persistence.AppendDueKey(buf[:w], at.UnixNano(), []byte(st.ID))
	err := b.Set(buf[w:], buf[:w], nil)
	putScratch(p, buf)
	return err
}

// putRecord writes v, a record's JSON, under the wallet's key (tag, id). v
// is usually appended to a.valBuf[:0] and becomes a.valBuf: Batch.Set copies
// it, so the buffer is free again when Set returns (encodeBuckets appends
// to it later in the step).
func (a *walletActor) putRecord(b *pebble.Batch, tag byte, id string, v []byte) error {
	a.valBuf = v[:0]
	return b.Set(persistence.AppendWalletKey(a.keyBuf[:0], a.walletB, tag, []byte(id)), v, nil)
}

// Settlement reads a settlement by id; persistence.ErrNotFound when unknown.
func (s *System) Settlement(id string) (*persistence.Settlement, error) {
	return readSettlement(s.store, id)
}
