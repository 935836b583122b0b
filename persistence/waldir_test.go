package persistence

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var walTestKey = []byte("wal-test-key")

// writeAndClose opens a store with cfg, commits one synced key and closes
// it. Pebble's Close does not flush the memtable, so the key is in the WAL
// only: a reopen finds it only by replaying the WAL from where it is.
func writeAndClose(t *testing.T, cfg Config) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := s.DB().NewBatch()
	_ = b.Set(walTestKey, []byte("v"), nil)
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// mustRead opens a store with cfg and fails unless the key is there.
func mustRead(t *testing.T, cfg Config) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get(nil, walTestKey); err != nil || string(v) != "v" {
		t.Fatalf("Get after reopen: %q, %v", v, err)
	}
}

func logsIn(t *testing.T, dir string) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

func TestWALDirKeepsTheLogApart(t *testing.T) {
	dir, wal := t.TempDir(), t.TempDir()
	writeAndClose(t, Config{Dir: dir, WALDir: wal})
	if n := len(logsIn(t, dir)); n != 0 {
		t.Errorf("%d WAL files in the store's directory, want none", n)
	}
	if len(logsIn(t, wal)) == 0 {
		t.Error("no WAL file in the WAL directory")
	}
	if b, err := os.ReadFile(filepath.Join(dir, WALMarker)); err != nil || strings.TrimSpace(string(b)) != wal {
		t.Errorf("marker: %q, %v; want %s", b, err, wal)
	}
	mustRead(t, Config{Dir: dir, WALDir: wal})
}

// Opened under another WAL directory than the one it was written with,
// Pebble would start without the commits only the WAL holds, silently.
// Open refuses, before Pebble runs: the store is intact afterwards.
func TestWALDirChangeIsRefused(t *testing.T) {
	for _, c := range []struct {
		name          string
		written, then func(wal, other string) string
	}{
		{"apart, then in its own directory", func(wal, _ string) string { return wal }, func(string, string) string { return "" }},
		{"apart, then elsewhere", func(wal, _ string) string { return wal }, func(_, other string) string { return other }},
		{"in its own directory, then apart", func(string, string) string { return "" }, func(wal, _ string) string { return wal }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, wal, other := t.TempDir(), t.TempDir(), t.TempDir()
			writeAndClose(t, Config{Dir: dir, WALDir: c.written(wal, other)})
			_, err := Open(Config{Dir: dir, WALDir: c.then(wal, other)})
			if !errors.Is(err, ErrWALDir) {
				t.Fatalf("Open: %v, want ErrWALDir", err)
			}
			if !strings.Contains(err.Error(), WALMarker) {
				t.Errorf("the refusal does not say how to move the WAL: %v", err)
			}
			mustRead(t, Config{Dir: dir, WALDir: c.written(wal, other)})
		})
	}
}

// The way to move a WAL that the refusal names: move the *.log files, and
// record the new directory in the marker (or remove the marker for the
// store's own directory).
func TestWALDirMovesAsTheRefusalSays(t *testing.T) {
	dir, wal, other := t.TempDir(), t.TempDir(), t.TempDir()
	writeAndClose(t, Config{Dir: dir, WALDir: wal})
	move := func(from, to string) {
		for _, l := range logsIn(t, from) {
			if err := os.Rename(l, filepath.Join(to, filepath.Base(l))); err != nil {
				t.Fatal(err)
			}
		}
	}
	move(wal, other)
	if err := os.WriteFile(filepath.Join(dir, WALMarker), []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRead(t, Config{Dir: dir, WALDir: other})

	move(other, dir)
	if err := os.Remove(filepath.Join(dir, WALMarker)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, Config{Dir: dir})
}

// A marker edited or deleted by hand, with the WAL left where it was, is
// caught by the WAL directory Pebble recorded at the last open: opening with
// the marker's directory would start without the commits only the WAL holds.
// The refusal says how to keep the WAL where it is, and that works.
func TestHandEditedMarkerIsCaught(t *testing.T) {
	for _, c := range []struct {
		name    string
		written string // "wal": apart; "": in its own directory
		edit    func(t *testing.T, marker, other string)
		then    func(other string) string
	}{
		{"marker deleted, WAL apart", "wal", func(t *testing.T, marker, _ string) {
			if err := os.Remove(marker); err != nil {
				t.Fatal(err)
			}
		}, func(string) string { return "" }},
		{"marker pointed elsewhere, WAL apart", "wal", func(t *testing.T, marker, other string) {
			if err := os.WriteFile(marker, []byte(other+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(other string) string { return other }},
		{"marker written, WAL in its own directory", "", func(t *testing.T, marker, other string) {
			if err := os.WriteFile(marker, []byte(other+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(other string) string { return other }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, wal, other := t.TempDir(), t.TempDir(), t.TempDir()
			if c.written == "" {
				wal = ""
			}
			writeAndClose(t, Config{Dir: dir, WALDir: wal})
			marker := filepath.Join(dir, WALMarker)
			c.edit(t, marker, other)
			_, err := Open(Config{Dir: dir, WALDir: c.then(other)})
			if !errors.Is(err, ErrWALDir) {
				t.Fatalf("Open: %v, want ErrWALDir", err)
			}
			// As the refusal says: the marker names the WAL's directory
			// again (or is gone for the store's own).
			if wal == "" {
				if !strings.Contains(err.Error(), "remove "+WALMarker) {
					t.Fatalf("the refusal does not say to remove the marker: %v", err)
				}
				if err := os.Remove(marker); err != nil {
					t.Fatal(err)
				}
			} else {
				if !strings.Contains(err.Error(), "write "+wal+" into "+WALMarker) {
					t.Fatalf("the refusal does not say what to write into the marker: %v", err)
				}
				if err := os.WriteFile(marker, []byte(wal+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			mustRead(t, Config{Dir: dir, WALDir: wal})
		})
	}
}

// A new store given a WAL directory that holds another store's WAL would
// replay it into itself.
func TestNewStoreRefusesAnotherStoresWAL(t *testing.T) {
	wal := t.TempDir()
	writeAndClose(t, Config{Dir: t.TempDir(), WALDir: wal})
	dir := t.TempDir()
	if _, err := Open(Config{Dir: dir, WALDir: wal}); !errors.Is(err, ErrWALDir) {
		t.Fatalf("Open: %v, want ErrWALDir", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("the refused open left %d files in the new store's directory", len(names))
	}
}

// The store's own directory given as its WAL directory is no WAL directory
// of its own: no marker, and the store opens without one as well.
func TestWALDirSameAsDirIsTheDefault(t *testing.T) {
	dir := t.TempDir()
	writeAndClose(t, Config{Dir: dir, WALDir: dir + "/."})
	if _, err := os.Stat(filepath.Join(dir, WALMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker written for the store's own directory: %v", err)
	}
	mustRead(t, Config{Dir: dir})
}

// A marker left behind by a store whose files were deleted does not outlive
// it: a new store in that directory, with its WAL there too, starts again.
func TestNewStoreDropsAStaleMarker(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, WALMarker), []byte(t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeAndClose(t, Config{Dir: dir})
	mustRead(t, Config{Dir: dir})
}
