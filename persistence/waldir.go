package persistence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/vfs"
)

// ErrWALDir is returned by Open when the configured WAL directory is not the
// one the store was written with, or holds another store's WAL.
var ErrWALDir = errors.New("persistence: WAL directory does not match the store")

// WALMarker names the file in the store's directory that records where its
// write-ahead log lives when that is elsewhere (Config.WALDir).
//
// Pebble v1.1.5 replays the WAL files it finds in the WAL directory it is
// given, and looks for them nowhere else. Opened without the WAL directory
// it was written with, a store would start without its newest commits, and
// say nothing: they are acknowledged, synced, and only in the WAL until the
// next flush. A new store given a WAL directory that still holds another
// store's files would replay those into itself. Open refuses both.
const WALMarker = "SGE-WAL-DIR"

// resolveWALDir checks cfg.WALDir against the one the store in cfg.Dir was
// written with, records it for a new store, and returns the WAL directory to
// give Pebble: "" for the store's own directory. existing says whether
// cfg.Dir already holds a store.
func resolveWALDir(cfg Config, existing bool) (string, error) {
	want, err := walDirOf(cfg)
	if err != nil {
		return "", err
	}
	marker := cfg.FS.PathJoin(cfg.Dir, WALMarker)
	if existing {
		had, err := readMarker(cfg.FS, marker)
		if err != nil {
			return "", fmt.Errorf("%w: read %s: %w", ErrCorrupt, marker, err)
		}
		if had != want {
			return "", fmt.Errorf("%w: the store in %s keeps its WAL in %s, not in %s: open it with "+
				"its WAL where it is, or move the WAL first (stop, move the *.log files, and write the "+
				"new directory's absolute path into %s, or remove it for the store's own directory)",
				ErrWALDir, cfg.Dir, describeWALDir(had), describeWALDir(want), marker)
		}
		return want, nil
	}
	if want == "" {
		// A marker left by a store whose files were deleted would refuse
		// this new one at its next start.
		if err := cfg.FS.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: remove %s: %w", ErrCorrupt, marker, err)
		}
		return "", nil
	}
	if names, err := cfg.FS.List(want); err == nil {
		for _, n := range names {
			if strings.HasSuffix(n, ".log") {
				return "", fmt.Errorf("%w: %s holds WAL files (%s) but %s holds no store: "+
					"they belong to another store, and a new one would replay them", ErrWALDir, want, n, cfg.Dir)
			}
		}
	}
	if err := writeMarker(cfg.FS, cfg.Dir, marker, want); err != nil {
		return "", fmt.Errorf("%w: write %s: %w", ErrCorrupt, marker, err)
	}
	return want, nil
}

// walDirOf is cfg.WALDir as an absolute, clean path, or "" when it is empty
// or the store's own directory.
func walDirOf(cfg Config) (string, error) {
	if cfg.WALDir == "" {
		return "", nil
	}
	abs := func(p string) (string, error) { return filepath.Clean(p), nil }
	if cfg.FS == vfs.Default {
		abs = filepath.Abs
	}
	dir, err := abs(cfg.Dir)
	if err != nil {
		return "", err
	}
	wal, err := abs(cfg.WALDir)
	if err != nil || wal == dir {
		return "", err
	}
	return wal, nil
}

func describeWALDir(d string) string {
	if d == "" {
		return "its own directory"
	}
	return d
}

// readMarker returns the WAL directory recorded in marker: "" when there is
// no marker (a store that keeps its WAL in its own directory).
func readMarker(fs vfs.FS, marker string) (string, error) {
	f, err := fs.Open(marker)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return strings.TrimSpace(string(b)), err
}

// writeMarker records wal in marker, synced with its directory, before
// Pebble creates the store: a store is never without its marker.
func writeMarker(fs vfs.FS, dir, marker, wal string) error {
	if err := fs.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := fs.Create(marker)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, wal+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
