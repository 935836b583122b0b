package persistence

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Idempotency is the stored final answer of one (wallet, route, key).
type Idempotency struct {
	// ExpiresAt is unix nanoseconds after which the record is treated as absent.
	ExpiresAt int64
	// Fingerprint is SHA-256 over method, route and body of the first request.
	Fingerprint [32]byte
	Status      int
	// Problem marks a problem-details body (application/problem+json).
	Problem bool
	Body    []byte
}

const idemVersion = 1

// IdempotencyHeaderSize is the encoded record's size before its body.
const IdempotencyHeaderSize = 44

// AppendIdempotency encodes r: version(1) expiresAt(8) fingerprint(32)
// status(2) problem(1) body.
func AppendIdempotency(dst []byte, r *Idempotency) []byte {
	dst = append(dst, idemVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.ExpiresAt))
	dst = append(dst, r.Fingerprint[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Status))
	p := byte(0)
	if r.Problem {
		p = 1
	}
	dst = append(dst, p)
	return append(dst, r.Body...)
}

// DecodeIdempotency decodes v into r; r.Body aliases v.
func DecodeIdempotency(v []byte, r *Idempotency) error {
	if len(v) < IdempotencyHeaderSize || v[0] != idemVersion {
		return fmt.Errorf("%w: idempotency record of %d bytes", ErrCorrupt, len(v))
	}
	r.ExpiresAt = int64(binary.BigEndian.Uint64(v[1:9]))
	copy(r.Fingerprint[:], v[9:41])
	r.Status = int(binary.BigEndian.Uint16(v[41:43]))
	r.Problem = v[43] == 1
	r.Body = v[IdempotencyHeaderSize:]
	return nil
}

// Settlement statuses.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusDead      = "dead"
)

// Settlement kinds.
const (
	KindRegistration = "registration"
	KindClaim        = "claim"
	KindPayment      = "payment"
)

// Settlement is a durable intent to settle, and its progress. Its JSON is
// the stored record and the real backend's request body; the API's view
// (GET /api/settlements/{id}) is transport.AppendSettlement.
type Settlement struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	Wallet        string     `json:"wallet"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
	LastError     string     `json:"lastError"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	// What to settle: set per kind.
	RegistrationID string `json:"registrationId,omitempty"`
	ClaimID        string `json:"claimId,omitempty"`
	Amount         string `json:"amount,omitempty"`
	TxHash         string `json:"txHash,omitempty"`
	EventID        string `json:"eventId,omitempty"`
	Currency       string `json:"currency,omitempty"` // payments: Amount is a decimal price in it
	// TraceParent links the settlement's spans to the request that created it.
	TraceParent string `json:"traceParent,omitempty"`
}

// Claim is a prepared claim ticket and, once recorded, its transaction.
type Claim struct {
	ID           string    `json:"claimId"`
	Wallet       string    `json:"wallet"`
	Amount       string    `json:"amount"`
	Nonce        string    `json:"nonce"`
	ExpiresAt    time.Time `json:"expiresAt"`
	Signature    string    `json:"signature"`
	TxHash       string    `json:"txHash,omitempty"`
	SettlementID string    `json:"settlementId,omitempty"`
	RecordedAt   time.Time `json:"recordedAt,omitzero"`
}

// Registration is one registration of a wallet.
type Registration struct {
	ID           string    `json:"registrationId"`
	Wallet       string    `json:"wallet"`
	SettlementID string    `json:"settlementId"`
	CreatedAt    time.Time `json:"createdAt"`
}
