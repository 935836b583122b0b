package persistence

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"
)

// Pebble v1.1.5 panics in Open on a directory whose MANIFEST pointers are
// gone while a WAL is left. openPebble turns that into an error, and Open
// refuses such a directory before Pebble sees it (Pebble would otherwise
// start an empty store over the old files when no WAL is left). Open must
// refuse before Pebble runs: Pebble's failed attempt already writes a new
// MANIFEST and marker, after which the next open "succeeds".
func TestLostManifestPointerIsAnErrorNotAPanic(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pointers, _ := filepath.Glob(filepath.Join(dir, "marker.manifest.*"))
	for _, p := range append(pointers, filepath.Join(dir, "CURRENT")) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(Config{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	// Pebble itself, with the options Open uses, panics here (with an older
	// format it silently starts a new store); openPebble reports an error.
	db, err := openPebble(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err == nil {
		_ = db.Close()
		t.Fatal("pebble opened a directory without its MANIFEST pointer")
	}
	t.Logf("openPebble: %v", err)
}
