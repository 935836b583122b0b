package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLoopbackTarget(t *testing.T) {
	for _, tc := range []struct{ url, addr, base string }{
		{"http://127.0.0.1:3000", "127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"http://127.8.9.10:80/prefix/", "127.8.9.10:80", "http://127.8.9.10:80/prefix"},
		{"http://[::1]:3000", "[::1]:3000", "http://[::1]:3000"},
		{"http://[::ffff:127.0.0.1]:3000", "[::ffff:127.0.0.1]:3000", "http://[::ffff:127.0.0.1]:3000"},
		{"http://localhost", "localhost:80", "http://localhost"},
	} {
		addr, base, err := loopbackTarget(tc.url)
		if err != nil || addr != tc.addr || base != tc.base {
			t.Errorf("%s: got %q %q %v, want %q %q", tc.url, addr, base, err, tc.addr, tc.base)
		}
	}
	for _, u := range []string{"http://10.0.0.1:3000", "http://0.0.0.0:3000", "http://example.com", "http://localhost.example.com",
		"http://[::]:3000", "http://192.168.1.1", "http://128.0.0.1", "http://2130706433"} {
		if _, _, err := loopbackTarget(u); !errors.Is(err, errNotLoopback) {
			t.Errorf("%s: err %v, want errNotLoopback", u, err)
		}
	}
	for _, u := range []string{"https://127.0.0.1", "127.0.0.1:3000", "://x"} {
		if _, _, err := loopbackTarget(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for scenario, want := range defaultConc {
		c, err := parseFlags([]string{"-scenario", scenario}, io.Discard)
		if err != nil || c.Conc != want || c.Replay != 0.1 || c.Duration.Seconds() != 30 || c.addr != "127.0.0.1:3000" {
			t.Errorf("%s: %+v %v", scenario, c, err)
		}
	}
	_, err := parseFlags([]string{"-c", "-1", "-replay", "2", "-rate", "-5", "-quota", "-1", "-url", "http://10.1.1.1", "-xff-base", "::1"}, io.Discard)
	for _, want := range []string{"-c", "-replay", "-rate", "-quota", "loopback", "-xff-base"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
	for _, args := range [][]string{{"-replay", "NaN"}, {"-rate", "NaN"}, {"-rate", "+Inf"}, {"-quota", "0"}} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want it refused", args, err)
		}
	}
	// An unknown scenario is reported as such, not as a missing -c.
	_, err = parseFlags([]string{"-scenario", "nope"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) || strings.Contains(err.Error(), "-c") {
		t.Errorf("-scenario nope: %v", err)
	}
}
