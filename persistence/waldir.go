package persistence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
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
		if err := checkLastWALDir(cfg, want); err != nil {
			return "", err
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
	if n, err := walFile(cfg.FS, want); err == nil && n != "" {
		return "", fmt.Errorf("%w: %s holds WAL files (%s) but %s holds no store: "+
			"they belong to another store, and a new one would replay them", ErrWALDir, want, n, cfg.Dir)
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

// checkLastWALDir catches a marker that was edited or deleted by hand while
// the WAL stayed where it was. Pebble records the WAL directory in the
// OPTIONS file it writes at every open; if the last open used another
// directory than want, and that directory still holds WAL files, they were
// not moved, and opening with want would start without them.
func checkLastWALDir(cfg Config, want string) error {
	last, ok, err := lastOpenWALDir(cfg.FS, cfg.Dir)
	if err != nil {
		return fmt.Errorf("%w: read the OPTIONS file in %s: %w", ErrCorrupt, cfg.Dir, err)
	}
	inDir := func(d string) string {
		if d == "" {
			return filepath.Clean(cfg.Dir)
		}
		return filepath.Clean(d)
	}
	if !ok || inDir(last) == inDir(want) {
		return nil
	}
	n, err := walFile(cfg.FS, inDir(last))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil // the directory went with the move
	case err != nil:
		return fmt.Errorf("%w: list %s, where the store's WAL was: %w", ErrWALDir, inDir(last), err)
	case n == "":
		return nil // the files went with the move
	}
	keep := "write " + last + " into " + WALMarker + " and open the store with it"
	if last == "" {
		keep = "remove " + WALMarker + " and open the store without a WAL directory"
	}
	return fmt.Errorf("%w: the store in %s was last opened with its WAL in %s, which still "+
		"holds WAL files (%s), but %s says %s: to keep the WAL there, %s; to move it, "+
		"move the *.log files first", ErrWALDir, cfg.Dir, describeWALDir(last), n,
		WALMarker, describeWALDir(want), keep)
}

// walFile names a WAL file in dir, or is "" when dir holds none.
func walFile(fs vfs.FS, dir string) (string, error) {
	names, err := fs.List(dir)
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			return n, nil
		}
	}
	return "", err
}

// lastOpenWALDir is the WAL directory in the store's newest OPTIONS file,
// as Pebble was given it; ok is false when there is no OPTIONS file.
func lastOpenWALDir(fs vfs.FS, dir string) (wal string, ok bool, err error) {
	names, err := fs.List(dir)
	if err != nil {
		return "", false, err
	}
	var newest string
	var newestNum uint64
	for _, n := range names {
		num, isOpts := strings.CutPrefix(n, "OPTIONS-")
		v, perr := strconv.ParseUint(num, 10, 64)
		if isOpts && perr == nil && (newest == "" || v > newestNum) {
			newest, newestNum = n, v
		}
	}
	if newest == "" {
		return "", false, nil
	}
	f, err := fs.Open(fs.PathJoin(dir, newest))
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", false, err
	}
	var o pebble.Options
	skip := &pebble.ParseHooks{SkipUnknown: func(string, string) bool { return true }}
	if err := o.Parse(string(b), skip); err != nil {
		return "", false, err
	}
	return o.WALDir, true, nil
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
