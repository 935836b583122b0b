package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/valyala/fasthttp"
)

const (
	routeWebhook    = "/api/webhooks/commerce"
	headerSignature = "X-CC-Webhook-Signature"
	// typeUnverified labels deliveries whose signature failed: their type
	// was never read.
	typeUnverified = "unverified"
	typeOther      = "other"
)

// webhookTypes are the Commerce charge event types counted under their own
// name; every other type is counted as "other", so a sender cannot grow the
// label set.
var webhookTypes = map[string]string{
	"charge:created":   "charge:created",
	"charge:confirmed": "charge:confirmed",
	"charge:failed":    "charge:failed",
	"charge:delayed":   "charge:delayed",
	"charge:pending":   "charge:pending",
	"charge:resolved":  "charge:resolved",
}

func typeLabel(t string) string {
	if l, ok := webhookTypes[t]; ok {
		return l
	}
	return typeOther
}

// commerceDelivery is a Coinbase Commerce webhook body (API 2018-03-22):
// {"id","scheduled_for","event":{"id","resource","type","api_version",
// "created_at","data":{...the charge...}}}. The outer id identifies the
// delivery, not the event: retries of one event carry the same event.id.
type commerceDelivery struct {
	Event *struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt string          `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	} `json:"event"`
}

// commerceCharge is the part of event.data the gateway reads. It is decoded
// leniently: a data object of another shape reads as an event without a
// wallet, acknowledged and ignored, instead of being retried for days.
type commerceCharge struct {
	ID       string                     `json:"id"`
	Code     string                     `json:"code"`
	Metadata map[string]json.RawMessage `json:"metadata"`
	Pricing  map[string]json.RawMessage `json:"pricing"`
}

type commercePrice struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// validSignature reports whether sig is the hex HMAC-SHA256 of body keyed
// with the secret, comparing in constant time.
func (s *Server) validSignature(sig, body []byte) bool {
	var got [sha256.Size]byte
	if len(sig) != hex.EncodedLen(len(got)) {
		return false
	}
	if _, err := hex.Decode(got[:], sig); err != nil {
		return false
	}
	m := hmac.New(sha256.New, s.webhookSecret)
	m.Write(body)
	return hmac.Equal(m.Sum(nil), got[:])
}

// commerceWebhook receives Commerce events. The signature is checked on the
// raw body before anything is parsed; the event then goes to the wallet actor
// named in its metadata, which dedupes it by event id and commits its effect
// with the dedupe record.
func (s *Server) commerceWebhook(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	if !s.validSignature(ctx.Request.Header.Peek(headerSignature), body) {
		s.cfg.Observer.Webhook(typeUnverified, "bad_signature")
		writeProblem(ctx, 401, "invalid-signature", "Unauthorized", "missing or invalid "+headerSignature)
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		writeProblem(ctx, 415, "unsupported-media-type", "Unsupported Media Type", "send the body as application/json")
		return
	}
	ev, wallet, err := parseCommerce(body)
	if err != nil {
		writeProblem(ctx, 400, "invalid-body", "Bad Request", err.Error())
		return
	}
	r := actors.NewRequest()
	defer actors.Release(r)
	r.Op = actors.OpWebhook
	r.Webhook = ev
	r.Wallet = append(r.Wallet[:0], wallet...)
	r.Key = append(r.Key[:0], ev.ID...)
	// Retries of one event may differ in the envelope (delivery id,
	// scheduled_for), so the fingerprint is the event id, not the body.
	r.Fingerprint = sha256.Sum256([]byte("commerce-event\n" + ev.ID))
	r.IP = s.clientIP(ctx)
	if tp := ctx.Request.Header.Peek("traceparent"); len(tp) > 0 && len(tp) <= 128 {
		r.TraceParent = append(r.TraceParent[:0], tp...)
	}
	if err := s.sys.Do(r); err != nil {
		ctx.Response.Header.Set("Retry-After", "1")
		writeProblem(ctx, 503, "unavailable", "Service Unavailable", "the event was not processed; deliver it again")
		return
	}
	if ev.Result != "" {
		s.cfg.Observer.Webhook(typeLabel(ev.Type), ev.Result)
	}
	ctx.SetStatusCode(r.Status)
	if r.Problem {
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetContentType("application/problem+json")
	} else {
		ctx.SetContentType("application/json")
	}
	ctx.SetBody(r.Body)
}

// parseCommerce reads a verified delivery. It fails only when the envelope
// is not JSON or lacks a usable event id and type; a missing or invalid
// wallet is not an error (wallet is then empty and the event is ignored).
func parseCommerce(body []byte) (ev *actors.WebhookEvent, wallet []byte, err error) {
	var d commerceDelivery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, nil, errors.New("body is not a Commerce webhook delivery: " + trimErr(err))
	}
	if d.Event == nil {
		return nil, nil, errors.New(`missing "event"`)
	}
	if !validEventID(d.Event.ID) {
		return nil, nil, errors.New(`"event.id" must be 1 to 128 letters, digits or ._:-`)
	}
	if d.Event.Type == "" || len(d.Event.Type) > 64 {
		return nil, nil, errors.New(`"event.type" must be a string of 1 to 64 bytes`)
	}
	ev = &actors.WebhookEvent{ID: d.Event.ID, Type: d.Event.Type, OccurredAt: clip(d.Event.CreatedAt)}
	var ch commerceCharge
	if json.Unmarshal(d.Event.Data, &ch) != nil {
		return ev, nil, nil
	}
	ev.ChargeID, ev.ChargeCode = clip(ch.ID), clip(ch.Code)
	ev.Amount, ev.Currency = price(ch.Pricing)
	var w string
	if raw, ok := ch.Metadata["wallet"]; ok {
		if json.Unmarshal(raw, &w) != nil {
			w = string(raw)
		}
	}
	if w == "" {
		return ev, nil, nil
	}
	if wallet, err = input.AppendWallet(nil, []byte(w)); err != nil {
		ev.WalletInvalid = clip(w)
		return ev, nil, nil
	}
	return ev, wallet, nil
}

// price picks what a payment settles: pricing.settlement (what the merchant
// receives) when Commerce sent a valid one, else pricing.local (the price the
// charge was created with). Neither valid: "", "".
func price(pricing map[string]json.RawMessage) (amount, currency string) {
	for _, k := range []string{"settlement", "local"} {
		var p commercePrice
		if raw, ok := pricing[k]; ok && json.Unmarshal(raw, &p) == nil && validAmount(p.Amount) && validCurrency(p.Currency) {
			return p.Amount, p.Currency
		}
	}
	return "", ""
}

// validAmount accepts a positive decimal such as "100.00".
func validAmount(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	dot, nonzero := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		case c >= '0' && c <= '9':
			nonzero = nonzero || c != '0'
		default:
			return false
		}
	}
	return nonzero
}

// validCurrency accepts a code such as "USD" or "USDC".
func validCurrency(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validEventID bounds what becomes part of a storage key.
func validEventID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// clip bounds a sender's string before it is stored or logged.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

func trimErr(err error) string { return clip(err.Error()) }
