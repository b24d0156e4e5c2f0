package netnode

import (
	"fmt"
	"os"
	"syscall"
)

// inode is the inode number of the file at path; for /proc/<pid>/ns/net and
// /run/netns/<name> it identifies a network namespace.
func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("reading %s: no inode", path)
	}
	return st.Ino, nil
}
