package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

// A data directory that is not a readable store of ours fails start-up with
// a message naming the problem and exit code 1, never silently.
func TestCorruptDataDirFailsStart(t *testing.T) {
	ours := func(t *testing.T) string {
		dir := t.TempDir()
		s, err := persistence.Open(persistence.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	garbage := func(t *testing.T, dir, glob string) {
		names, _ := filepath.Glob(filepath.Join(dir, glob))
		if len(names) == 0 {
			t.Fatalf("no %s in %s", glob, dir)
		}
		for _, n := range names {
			if err := os.WriteFile(n, []byte("\x00garbage\xff not what Pebble wrote\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T) string
		want    string
	}{
		{"garbage manifest", func(t *testing.T) string {
			dir := ours(t)
			garbage(t, dir, "MANIFEST-*")
			return dir
		}, "store is corrupt or unreadable"},
		{"manifest pointers lost", func(t *testing.T) string {
			dir := ours(t)
			names, _ := filepath.Glob(filepath.Join(dir, "marker.manifest.*"))
			names = append(names, filepath.Join(dir, "CURRENT"))
			for _, n := range names {
				if err := os.Remove(n); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}, "store is corrupt or unreadable"},
		{"foreign pebble store", func(t *testing.T) string {
			dir := t.TempDir()
			db, err := pebble.Open(dir, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set([]byte("someone else's key"), []byte("v"), pebble.Sync)
			_ = db.Close()
			return dir
		}, "holds data but no format version key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.prepare(t)
			var stderr strings.Builder
			// Bounded: should start-up wrongly succeed, run serves until ctx ends.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code := run(ctx, []string{"--data-dir", dir, "--addr", "127.0.0.1:0"},
				func(string) string { return "" }, &stderr)
			if code != exitFailed {
				t.Fatalf("exit code %d, want %d\n%s", code, exitFailed, stderr.String())
			}
			if !strings.Contains(stderr.String(), "sged: cannot start:") || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

// No secret setting's value reaches the log, whatever sged logs while it
// starts, serves and stops. The test covers every setting marked secret, so
// a secret added later is covered without touching it; and every setting
// whose name says it is a secret must be marked so.
func TestSecretsNeverLogged(t *testing.T) {
	var c config
	values := map[string]string{}
	for _, s := range settings(&c) {
		if !s.secret {
			if isSecretName(s.env) {
				t.Errorf("%s looks like a secret but is not marked secret", s.env)
			}
			continue
		}
		// A base64 32-byte seed: what CLAIM_SIGNING_KEY needs, and a fine
		// token or webhook secret too.
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		values[s.env] = base64.StdEncoding.EncodeToString(seed[:])
	}
	if _, ok := values["CLAIM_SIGNING_KEY"]; !ok {
		t.Fatal("CLAIM_SIGNING_KEY is not marked secret")
	}
	env := map[string]string{"DATA_DIR": t.TempDir(), "ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug"}
	for k, v := range values {
		env[k] = v
	}

	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		code := run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
		exited <- code
	}()
	var log strings.Builder
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	sawStarting := false
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec["msg"] {
		case "starting":
			sawStarting = true
			for k := range values {
				if rec[k] != "***" {
					t.Errorf("start-up line shows %s as %v, want ***", k, rec[k])
				}
			}
		case "listening":
			cancel()
		}
	}
	select {
	case code := <-exited:
		if code != exitOK {
			t.Fatalf("exit code %d\n%s", code, log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sged did not stop")
	}
	if !sawStarting {
		t.Fatalf("no start-up line:\n%s", log.String())
	}
	for k, v := range values {
		if strings.Contains(log.String(), v) {
			t.Errorf("the value of %s appears in the log:\n%s", k, log.String())
		}
	}
}

// isSecretName is what a reviewer would call a secret by its name.
func isSecretName(env string) bool {
	for _, s := range []string{"TOKEN", "SECRET", "PASSWORD", "SIGNING_KEY", "PRIVATE"} {
		if strings.Contains(env, s) {
			return true
		}
	}
	return false
}
