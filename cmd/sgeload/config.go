package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"time"
)

// Config of one run. Zero values of the optional fields take the defaults noted.
type Config struct {
	URL      string        // http://127.0.0.1:3000; must be loopback
	Scenario string        // register, claim, hit, limited, baseline or durable
	Conc     int           // workers = connections; default per scenario (defaultConc)
	Duration time.Duration // 30s; always bounds the run
	Max      int64         // requests; 0 = bounded by Duration only
	Replay   float64       // 0.1: share of operations re-sent with the same key
	JSON     bool          // report as JSON
	Wallets  int           // 0 = a fresh wallet per operation, else a pool of this many
	XFFBase  string        // empty = no X-Forwarded-For; else the first IPv4 to send
	Keys     int           // hit: distinct keys created first; 100
	Quota    int           // limited: admissions the server may grant per hour; 5
	Baseline bool          // run the bare baseline first and compare
	Timeout  time.Duration // 10s per request
	Rate     float64       // 0 = as fast as the workers go; else requests per second in all
	Profile  string        // empty = none; CPU profile of sgeload itself
	WALDir   string        // durable: empty = the WAL beside the store; else a fresh directory under this one

	addr string // host:port derived from URL by Validate
	base string // URL without trailing slash, routes are appended
}

var defaultConc = map[string]int{"register": 1000, "claim": 500, "hit": 1000, "limited": 100, "baseline": 1000, "durable": 1000}

const usageText = `usage: sgeload [flags]

Drives the SGE HTTP API on this machine (loopback only) and verifies every answer.
Exit status: 0 ok, 1 a verification failure (or no answers at all), 2 usage error.

Per-IP limit: the server allows 5 registrations per hour per client IP, so against a
default server every register run gets 429 after the first 5 (counted, verified, not a
failure). For a real load run start the server with TRUSTED_PROXIES=127.0.0.1/32 and pass
-xff-base 10.0.0.1: each operation then sends X-Forwarded-For with its own address
(10.0.0.1, 10.0.0.2, ...), so the limiter sees distinct clients.

Baselines need no server: -scenario baseline starts a bare fasthttp server as a child
process and drives it with register traffic; -scenario durable starts one that first
commits what a registration writes, synced, through sged's store (in a temporary
directory): the ceiling of a durable MISS on this machine. -baseline runs the bare
baseline before any scenario and prints the ratio of their requests/s; with -rate both
run at the pace, so it prints them side by side without a ratio.

`

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("sgeload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText); fs.PrintDefaults() }
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:3000", "server base `URL` (loopback only)")
	fs.StringVar(&c.Scenario, "scenario", "register", "register|claim|hit|limited|baseline|durable (the baseline server plus a durable commit of a registration's records per request)")
	fs.IntVar(&c.Conc, "c", 0, "concurrent workers/connections (default: register 1000, claim 500, hit 1000, limited 100, baseline and durable 1000)")
	fs.DurationVar(&c.Duration, "d", 30*time.Second, "duration; always bounds the run")
	fs.Int64Var(&c.Max, "n", 0, "max requests (0 = bounded by -d only)")
	fs.Float64Var(&c.Replay, "replay", 0.1, "share of operations re-sent with the same Idempotency-Key")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.IntVar(&c.Wallets, "wallets", 0, "distinct wallets (0 = fresh random wallet per operation)")
	fs.StringVar(&c.XFFBase, "xff-base", "", "first IPv4 for X-Forwarded-For, one address per operation (server needs TRUSTED_PROXIES=127.0.0.1/32)")
	fs.IntVar(&c.Keys, "keys", 100, "hit: distinct keys created before replaying them")
	fs.IntVar(&c.Quota, "quota", 5, "limited: per-hour quota of the register-ip policy on the server")
	fs.BoolVar(&c.Baseline, "baseline", false, "run the baseline first with the same -c/-d/-n and compare")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.Float64Var(&c.Rate, "rate", 0, "pace the run at this many requests/s in all (0 = unpaced); latency is measured from each request's scheduled time, so a server falling behind shows in it")
	fs.StringVar(&c.Profile, "cpuprofile", "", "write sgeload's own CPU profile to `file` (is the client the bottleneck?)")
	fs.StringVar(&c.WALDir, "wal-dir", "", "durable: keep the store's WAL in a fresh directory under this `dir`, as sged's WAL_DIR does (empty: beside the store)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("sgeload: unexpected arguments %q", fs.Args())
	}
	if c.Conc == 0 {
		c.Conc = defaultConc[c.Scenario]
	}
	return c, c.Validate()
}

// Validate reports every problem at once and derives the dial address.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sgeload: "+format, a...)) }
	if _, ok := defaultConc[c.Scenario]; !ok {
		bad("unknown scenario %q", c.Scenario)
	} else if c.Conc <= 0 {
		bad("-c must be positive") // an unknown scenario has no default -c to blame
	}
	if c.Duration <= 0 {
		bad("-d must be positive")
	}
	if c.Max < 0 {
		bad("-n must not be negative")
	}
	// Written so that NaN fails too.
	if !(c.Replay >= 0 && c.Replay <= 1) {
		bad("-replay must be within [0,1]")
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 1) {
		bad("-rate must be a finite number, 0 or more")
	}
	if c.Quota <= 0 {
		bad("-quota must be positive") // a negative one would make the over-quota check unfailable
	}
	if c.Wallets < 0 {
		bad("-wallets must not be negative")
	}
	if c.Keys <= 0 {
		bad("-keys must be positive")
	}
	if c.Timeout <= 0 {
		bad("-timeout must be positive")
	}
	if c.XFFBase != "" {
		if ip, err := netip.ParseAddr(c.XFFBase); err != nil || !ip.Is4() {
			bad("-xff-base %q is not an IPv4 address", c.XFFBase)
		}
	}
	var err error
	if c.addr, c.base, err = loopbackTarget(c.URL); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// errNotLoopback keeps load off every machine but this one.
var errNotLoopback = errors.New("sgeload: target is not loopback (127.0.0.0/8, ::1, localhost)")

// loopbackTarget checks that raw is an http URL on this machine and returns the
// address to dial and the base to append routes to.
func loopbackTarget(raw string) (addr, base string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("sgeload: -url: %w", err)
	}
	if u.Scheme != "http" {
		return "", "", fmt.Errorf("sgeload: -url %q: only http is supported", raw)
	}
	host := u.Hostname()
	if ip, perr := netip.ParseAddr(host); host != "localhost" && (perr != nil || !ip.Unmap().IsLoopback()) {
		return "", "", fmt.Errorf("%w: %q", errNotLoopback, raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	base = u.Scheme + "://" + u.Host + u.EscapedPath()
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return net.JoinHostPort(host, port), base, nil
}
