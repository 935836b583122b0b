package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one run; its JSON form is meant for scripts and READMEs.
type Report struct {
	Scenario    string            `json:"scenario"`
	URL         string            `json:"url"`
	Concurrency int               `json:"concurrency"`
	CPUs        int               `json:"cpus"`
	Seconds     float64           `json:"seconds"`
	Requests    uint64            `json:"requests"` // answered; transport errors are counted apart
	RPS         float64           `json:"requestsPerSecond"`
	LatencyMs   Latency           `json:"latencyMs"`
	Status      map[string]uint64 `json:"status"`
	Idempotency map[string]uint64 `json:"idempotency"`
	Failures    map[string]uint64 `json:"failures"`
	Samples     []string          `json:"failureSamples,omitempty"`
	Errors      uint64            `json:"transportErrors"`
	ErrorKinds  map[string]uint64 `json:"transportErrorKinds,omitempty"`
	Notes       []string          `json:"notes,omitempty"`
	Rate        float64           `json:"rate,omitempty"` // the pace asked for (-rate); 0 = unpaced
	Baseline    *Report           `json:"baseline,omitempty"`
	// Ratio is this run's requests/s over the baseline's, for an unpaced run
	// only: paced, both run at the pace, and the baseline is there for its
	// latency.
	Ratio     float64 `json:"ratioToBaseline,omitempty"`
	ClientCPU float64 `json:"clientCpuSeconds"` // CPU sgeload itself used during the run
}

type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func newReport(cfg Config, elapsed time.Duration, s *stats) *Report {
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	r := &Report{
		Scenario: cfg.Scenario, URL: cfg.URL, Concurrency: cfg.Conc, CPUs: runtime.NumCPU(), Rate: cfg.Rate,
		Seconds: elapsed.Seconds(), Requests: s.answers, RPS: float64(s.answers) / elapsed.Seconds(),
		LatencyMs: Latency{
			P50: ms(s.hist.quantile(0.5)), P90: ms(s.hist.quantile(0.9)), P99: ms(s.hist.quantile(0.99)),
			P999: ms(s.hist.quantile(0.999)), Max: ms(s.hist.maxed), Mean: s.hist.mean() / 1000,
		},
		Status: map[string]uint64{}, Idempotency: map[string]uint64{}, Failures: map[string]uint64{},
		Samples: s.samples, Errors: s.errs, ErrorKinds: s.errKinds,
	}
	for code, n := range s.status {
		if n > 0 {
			r.Status[strconv.Itoa(code)] = n
		}
	}
	for i, n := range s.idem {
		if n > 0 {
			r.Idempotency[idemNames[i]] = n
		}
	}
	for i, n := range s.fails {
		if n > 0 {
			r.Failures[failNames[i]] = n
		}
	}
	return r
}

// Failed reports whether this run or its baseline saw a verification failure.
func (r *Report) Failed() bool {
	return len(r.Failures) > 0 || (r.Baseline != nil && r.Baseline.Failed())
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText prints the run, beside its baseline when there is one.
func (r *Report) writeText(out io.Writer) error {
	cols := []*Report{r}
	if r.Baseline != nil {
		cols = []*Report{r.Baseline, r}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(*Report) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", f(c))
		}
		fmt.Fprintln(tw)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	fmt.Fprintf(out, "sgeload %s → %s  c=%d  cpus=%d\n", r.Scenario, r.URL, r.Concurrency, r.CPUs)
	row("", func(c *Report) string { return c.Scenario })
	row("seconds", func(c *Report) string { return fmt.Sprintf("%.2f", c.Seconds) })
	row("requests", func(c *Report) string { return num(float64(c.Requests)) })
	row("requests/s", func(c *Report) string { return fmt.Sprintf("%.0f", c.RPS) })
	for _, l := range []struct {
		name string
		f    func(Latency) float64
	}{{"p50 ms", func(l Latency) float64 { return l.P50 }}, {"p90 ms", func(l Latency) float64 { return l.P90 }},
		{"p99 ms", func(l Latency) float64 { return l.P99 }}, {"p99.9 ms", func(l Latency) float64 { return l.P999 }},
		{"max ms", func(l Latency) float64 { return l.Max }}, {"mean ms", func(l Latency) float64 { return l.Mean }}} {
		row(l.name, func(c *Report) string { return fmt.Sprintf("%.3f", l.f(c.LatencyMs)) })
	}
	for _, g := range []struct {
		prefix string
		m      func(*Report) map[string]uint64
	}{{"status ", func(c *Report) map[string]uint64 { return c.Status }},
		{"X-Idempotency ", func(c *Report) map[string]uint64 { return c.Idempotency }},
		{"FAIL ", func(c *Report) map[string]uint64 { return c.Failures }}} {
		for _, k := range keys(cols, g.m) {
			row(g.prefix+k, func(c *Report) string { return num(float64(g.m(c)[k])) })
		}
	}
	row("transport errors", func(c *Report) string { return num(float64(c.Errors)) })
	row("sgeload CPU s", func(c *Report) string { return fmt.Sprintf("%.2f", c.ClientCPU) })
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Ratio > 0 {
		fmt.Fprintf(out, "requests/s %s / baseline: %.2f\n", r.Scenario, r.Ratio)
	}
	for _, c := range cols {
		for _, k := range slices.Sorted(maps.Keys(c.ErrorKinds)) {
			fmt.Fprintf(out, "%s: transport error %q ×%d\n", c.Scenario, k, c.ErrorKinds[k])
		}
		for _, s := range c.Samples {
			fmt.Fprintf(out, "%s: %s\n", c.Scenario, s)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(out, "%s: %s\n", c.Scenario, n)
		}
	}
	verdict := "verified: no failures"
	if r.Failed() {
		verdict = "VERIFICATION FAILED"
	}
	_, err := fmt.Fprintln(out, verdict)
	return err
}

// keys lists the union of one map's keys across the columns, sorted.
func keys(cols []*Report, m func(*Report) map[string]uint64) []string {
	var ks []string
	for _, c := range cols {
		ks = append(ks, slices.Collect(maps.Keys(m(c)))...)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}
