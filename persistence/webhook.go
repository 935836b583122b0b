package persistence

import "time"

// WebhookDedupe is the global record of one processed webhook event
// (g/webhook/<eventId>). It is written in the same synced batch as the
// event's effect, so an event is either unprocessed and unrecorded or both.
type WebhookDedupe struct {
	// ExpiresAt is unix nanoseconds after which the record is treated as
	// absent (and purged): a delivery after it is processed again.
	ExpiresAt int64 `json:"expiresAt"`
	// Wallet is the wallet the event was routed to; empty when it named none.
	Wallet string `json:"wallet,omitempty"`
	Type   string `json:"type"`
	// Result is how the first delivery was handled: processed or ignored.
	Result       string `json:"result"`
	SettlementID string `json:"settlementId,omitempty"`
}

// WebhookEvent is a Commerce event recorded on its wallet
// (w/<ss>/<wallet>/e/<eventId>): charge:confirmed (with its payment
// settlement), charge:pending and charge:failed.
type WebhookEvent struct {
	EventID    string `json:"eventId"`
	Type       string `json:"type"`
	Wallet     string `json:"wallet"`
	ChargeID   string `json:"chargeId,omitempty"`
	ChargeCode string `json:"chargeCode,omitempty"`
	// Amount and Currency are the price taken for a payment (see
	// actors.WebhookEvent); empty for other types.
	Amount       string `json:"amount,omitempty"`
	Currency     string `json:"currency,omitempty"`
	SettlementID string `json:"settlementId,omitempty"`
	// OccurredAt is the event's created_at as Commerce sent it.
	OccurredAt string    `json:"occurredAt,omitempty"`
	ReceivedAt time.Time `json:"receivedAt"`
}
