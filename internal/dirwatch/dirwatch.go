// Package dirwatch keeps an fsnotify watch on a configuration directory
// that may be replaced whole: a symlink re-pointed to another directory
// (git-sync), or a directory removed and created again under the same
// name.
package dirwatch

import (
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Dir is a directory to watch and the directory its watch is on.
type Dir struct {
	Path    string
	watched string // Path with symlinks resolved, when watched
}

// Rewatch watches the directory anew, as it now resolves (its inode
// number may even be reused). The old watch is removed first, by name:
// fsnotify forgets a deleted directory's watch by name when the kernel's
// notice of it arrives, which would drop a new watch of the same name
// added before that notice; once removed here, the late notice finds
// nothing to forget. The caller reads the directory after it: a change
// made while no watch was in place is then seen.
func (d *Dir) Rewatch(fw *fsnotify.Watcher) error {
	r, err := filepath.EvalSymlinks(d.Path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.Path, err)
	}
	if d.watched != "" {
		_ = fw.Remove(d.watched) // gone already, or not: either way not watched now
	}
	d.watched = ""
	if err := fw.Add(r); err != nil {
		return fmt.Errorf("watch %s: %w", d.Path, err)
	}
	d.watched = r
	return nil
}
