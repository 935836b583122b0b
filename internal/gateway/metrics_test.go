package gateway_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/telemetry"

	dto "github.com/prometheus/client_model/go"
)

// scrape reads /metrics over HTTP in the text format and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, e *sgetest.Env) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// series returns the series of family name whose labels include want
// (name=value pairs).
func series(fams map[string]*dto.MetricFamily, name string, want ...string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// value is the value of the one series of name with labels want: a
// counter's or gauge's value, a histogram's sample count. -1 when there is
// no such series.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	s := series(fams, name, want...)
	switch {
	case len(s) == 0:
		return -1
	case len(s) > 1:
		t.Fatalf("%s%v: %d series, want one", name, want, len(s))
	}
	m := s[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: unexpected type", name)
	return 0
}

func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	var out []string
	for _, m := range series(fams, name) {
		for _, l := range m.Label {
			if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
				out = append(out, l.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

// Known traffic, then the scrape shows exactly it: idempotency results,
// rate-limit decisions and request counts per route template and status.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) { c.Actors.RegisterPerHourIP = 2 })
	w1, w2, w3 := sgetest.Wallet(), sgetest.Wallet(), sgetest.Wallet()
	expect := func(r *sgetest.Response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
		}
	}
	first := e.Post(t, "/api/register", "k1", registerBody(w1))
	expect(first, 201)                                                    // miss; register-ip and register-wallet allowed
	expect(e.Post(t, "/api/register", "k1", registerBody(w1)), 201)       // hit, no tokens
	expect(e.Post(t, "/api/register", "k1", `{"wallet": "`+w1+`"}`), 422) // mismatch: other bytes
	expect(e.Post(t, "/api/register", "", registerBody(w2)), 201)         // second IP token
	expect(e.Post(t, "/api/register", "", registerBody(w3)), 429)         // register-ip limited
	id, _ := first.JSON(t)["settlementId"].(string)
	expect(e.Do(t, http.MethodGet, "/api/settlements/"+id, ""), 200)                        // one template
	expect(e.Do(t, http.MethodGet, "/api/settlements/01M8EA7K1YA199N2458VJ7AX53", ""), 404) // for every id

	fams := scrape(t, e)
	const reg = "/api/register"
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sge_idempotency_requests_total", []string{"route", reg, "result", "miss"}, 1},
		{"sge_idempotency_requests_total", []string{"route", reg, "result", "hit"}, 1},
		{"sge_idempotency_requests_total", []string{"route", reg, "result", "mismatch"}, 1},
		{"sge_ratelimit_decisions_total", []string{"policy", "register-ip", "decision", "allowed"}, 2},
		{"sge_ratelimit_decisions_total", []string{"policy", "register-ip", "decision", "limited"}, 1},
		{"sge_ratelimit_decisions_total", []string{"policy", "register-wallet", "decision", "allowed"}, 2},
		{"http_request_duration_ms", []string{"method", "POST", "route", reg, "status", "201"}, 3},
		{"http_request_duration_ms", []string{"method", "POST", "route", reg, "status", "422"}, 1},
		{"http_request_duration_ms", []string{"method", "POST", "route", reg, "status", "429"}, 1},
		{"http_request_duration_ms", []string{"method", "GET", "route", "/api/settlements/{id}", "status", "200"}, 1},
		{"http_request_duration_ms", []string{"method", "GET", "route", "/api/settlements/{id}", "status", "404"}, 1},
	} {
		if got := value(t, fams, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Nothing else was counted.
	if n := len(series(fams, "sge_idempotency_requests_total")); n != 3 {
		t.Errorf("%d idempotency series, want 3", n)
	}
	if n := len(series(fams, "sge_ratelimit_decisions_total")); n != 3 {
		t.Errorf("%d rate-limit series, want 3", n)
	}
	if got := labelValues(fams, "http_request_duration_ms", "route"); !slices.Equal(got, []string{"/api/register", "/api/settlements/{id}"}) {
		t.Errorf("routes %v", got)
	}
	if n := len(series(fams, "http_request_duration_ms")); n != 5 {
		t.Errorf("%d request series, want 5", n)
	}

	// A scan of 100 random paths adds one series, not 100.
	for i := range 100 {
		path := fmt.Sprintf("/%s/%d", sgetest.TxHash()[2:12], i)
		if i%3 == 0 {
			path = "/api/settlements/" + sgetest.Wallet() + "/x"
		}
		expect(e.Do(t, http.MethodGet, path, ""), 404)
	}
	after := scrape(t, e)
	if n := len(series(after, "http_request_duration_ms")); n != 6 {
		t.Errorf("%d request series after the scan, want 6", n)
	}
	if got := value(t, after, "http_request_duration_ms", "method", "GET", "route", "unmatched", "status", "404"); got != 100 {
		t.Errorf("unmatched 404s = %v, want 100", got)
	}
}

// sge_actors_alive follows wallet actors up and back to 0 after passivation;
// every message is counted and the mailbox gauge returns to 0.
func TestActorMetricsRealScrape(t *testing.T) {
	e := sgetest.Start(t, func(c *gateway.Config) {
		c.Actors.IdleTimeout = time.Second
		c.Actors.RegisterPerHourIP = 100 // every request here reaches an actor
	})
	const n = 3
	wallets := []string{sgetest.Wallet(), sgetest.Wallet(), sgetest.Wallet()}
	for _, w := range wallets {
		if r := e.Post(t, "/api/register", "k", registerBody(w)); r.Status != 201 {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		// A second registration: a second message. (A replay would not be
		// one: durable records are replayed without the actor.)
		e.Post(t, "/api/register", "k2", registerBody(w))
	}
	wallet := []string{"kind", "wallet"}
	fams := scrape(t, e)
	if got := value(t, fams, "sge_actors_alive", wallet...); got != n {
		t.Errorf("alive = %v right after the traffic, want %d", got, n)
	}
	if got := value(t, fams, "sge_actor_spawned_total", wallet...); got != n {
		t.Errorf("spawned = %v, want %d", got, n)
	}
	if got := value(t, fams, "sge_actor_messages_total", wallet...); got != 2*n {
		t.Errorf("messages = %v, want %d", got, 2*n)
	}
	if got := value(t, fams, "sge_actor_message_duration_seconds", wallet...); got != 2*n {
		t.Errorf("message durations observed %v, want %d", got, 2*n)
	}

	sgetest.Eventually(t, 15*time.Second, "wallet actors passivated", func() bool {
		fams = scrape(t, e)
		return value(t, fams, "sge_actors_alive", wallet...) == 0
	})
	for name, want := range map[string]float64{
		"sge_actor_passivated_total": n,
		"sge_actor_mailbox_depth":    0,
		"sge_actor_restarts_total":   0,
		"sge_actor_messages_total":   2 * n,
	} {
		if got := value(t, fams, name, wallet...); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if e.System.LiveWallets() != 0 {
		t.Errorf("registry holds %d wallets", e.System.LiveWallets())
	}

	// The next request spawns the wallet again.
	e.Post(t, "/api/register", "k3", registerBody(wallets[0]))
	fams = scrape(t, e)
	if a, s := value(t, fams, "sge_actors_alive", wallet...), value(t, fams, "sge_actor_spawned_total", wallet...); a != 1 || s != n+1 {
		t.Errorf("after a new request: alive %v spawned %v, want 1 and %d", a, s, n+1)
	}
}

// Every metric the dashboard queries is in a scrape of the running service
// after real traffic.
func TestDashboardRealScrape(t *testing.T) {
	e := startWebhooks(t, func(c *gateway.Config) {
		c.Actors.RegisterPerHourIP = 1
		c.Settlements.MockLatency = time.Millisecond
	})
	w := sgetest.Wallet()
	e.Post(t, "/api/register", "k", registerBody(w))
	e.Post(t, "/api/register", "k", registerBody(w))
	e.Post(t, "/api/register", "", registerBody(sgetest.Wallet())) // 429
	e.Post(t, "/api/claim/prepare", "c", `{"wallet":"`+w+`","amount":"5"}`)
	e.Do(t, http.MethodGet, "/nope", "")
	if r := deliver(t, e, commerceEvent(1, uuid(), "charge:confirmed", `"`+w+`"`)); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	var fams map[string]*dto.MetricFamily
	sgetest.Eventually(t, 30*time.Second, "a settlement attempt", func() bool {
		fams = scrape(t, e)
		_, ok := fams["sge_settlement_attempts_total"]
		return ok
	})

	exported := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
	}
	names, err := telemetry.DashboardMetricNames()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names found in the dashboard: %v", len(names), names)
	}
	for _, name := range names {
		if !exported(name) {
			t.Errorf("the dashboard queries %s, which a real scrape does not export", name)
		}
	}
}
