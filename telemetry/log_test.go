package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"ADMIN_TOKEN", "s3cr3t", "***"},
		{"commerce_webhook_secret", "s3cr3t", "***"},
		{"CLAIM_SIGNING_KEY", "s3cr3t", "***"},
		{"DbPassword", "s3cr3t", "***"},
		{"ADMIN_TOKEN", "", ""},
		{"DATA_DIR", "./data", "./data"},
		{"publicKey", "pk", "pk"},
		{"claimPublicKey", "pk", "pk"},
		{"CLAIM_PUBLIC_KEY", "pk", "pk"},
		{"privateKey", "s3cr3t", "***"},
		{"signingKey", "s3cr3t", "***"},
		{"publicSigningKey", "s3cr3t", "***"},
		{"public_private_key", "s3cr3t", "***"},
		{"publicToken", "s3cr3t", "***"},
		{"PUBLIC_KEY_SECRET", "s3cr3t", "***"},
		{"ADDR", ":3000", ":3000"},
	} {
		if got := Redact(tt.name, tt.value); got != tt.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}

func TestLoggerJSONAndRedaction(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelInfo)
	l.Debug("hidden")
	l.Info("config", "ADMIN_TOKEN", "s3cr3t", slog.Group("otel", "api_key", "k"), "addr", ":3000", "COMMERCE_WEBHOOK_SECRET", "",
		"claimPublicKey", "pub", "CLAIM_SIGNING_KEY", "s3cr3t")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 line (debug dropped), got %q", buf.String())
	}
	if strings.Contains(buf.String(), "s3cr3t") {
		t.Fatalf("secret leaked: %s", buf.String())
	}
	var rec struct {
		Msg   string `json:"msg"`
		Token string `json:"ADMIN_TOKEN"`
		Addr  string `json:"addr"`
		Pub   string `json:"claimPublicKey"`
		Sign  string `json:"CLAIM_SIGNING_KEY"`
		OTel  struct {
			Key string `json:"api_key"`
		} `json:"otel"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Msg != "config" || rec.Token != "***" || rec.OTel.Key != "***" || rec.Addr != ":3000" || rec.Pub != "pub" || rec.Sign != "***" {
		t.Fatalf("record %+v", rec)
	}
}

func TestActorLoggerAtWarn(t *testing.T) {
	var buf bytes.Buffer
	system := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(ActorLoggerFactory(NewLogger(&buf, slog.LevelDebug)))))
	defer system.Shutdown()

	l := system.Logger()
	l.Info("actor started")
	l.Warn("mailbox full", "pid", "wallet/0xabc")
	out := buf.String()
	if strings.Contains(out, "actor started") {
		t.Errorf("info from protoactor got through: %s", out)
	}
	if !strings.Contains(out, `"msg":"mailbox full"`) || !strings.Contains(out, `"component":"protoactor"`) || !strings.Contains(out, `"system":"`+system.ID+`"`) {
		t.Errorf("warn missing or untagged: %s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("coloured output: %q", out)
	}
}

// A group taken from protoactor-go's logger keeps the Warn floor and nests
// its attributes, as the handler underneath would.
func TestActorLoggerGroupKeepsTheFloor(t *testing.T) {
	var buf bytes.Buffer
	system := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(ActorLoggerFactory(NewLogger(&buf, slog.LevelDebug)))))
	defer system.Shutdown()

	l := system.Logger().WithGroup("mailbox")
	l.Info("grouped info", "pid", "wallet/0xabc")
	l.Warn("grouped warn", "pid", "wallet/0xabc")
	out := buf.String()
	if strings.Contains(out, "grouped info") {
		t.Errorf("info got through the group: %s", out)
	}
	if !strings.Contains(out, `"msg":"grouped warn"`) || !strings.Contains(out, `"mailbox":{"pid":"wallet/0xabc"}`) {
		t.Errorf("warn missing or its attribute not in the group: %s", out)
	}
}
