package netns_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/intentguard/intentguard/internal/netns"
	"github.com/intentguard/intentguard/internal/testsupport/netnode"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestDoRunsInTheNamespaceAndLeavesNoThreadThere runs many Do calls at once: each must
// run in the target namespace, a socket it opens must stay there, and afterwards every
// thread of the process must be back in the original namespace.
func TestDoRunsInTheNamespaceAndLeavesNoThreadThere(t *testing.T) {
	node := netnode.New(t, "10.79.0.0/24", "fd79::/64")
	target := inode(t, node.Path)
	home := inode(t, "/proc/self/ns/net")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			errs <- netns.Do(node.Path, func() error {
				fi, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
				if err != nil {
					return err
				}
				if got := fi.Sys().(*syscall.Stat_t).Ino; got != target {
					return fmt.Errorf("running in namespace %d, want %d", got, target)
				}
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The node's address exists only inside its namespace: listening on it proves where
	// the socket is.
	var ln net.Listener
	if err := netns.Do(node.Path, func() error {
		var err error
		ln, err = net.Listen("tcp", node.IPv4.String()+":0")
		return err
	}); err != nil {
		t.Fatalf("listening in the node: %v", err)
	}
	defer ln.Close()
	if _, err := net.Listen("tcp", node.IPv4.String()+":0"); err == nil {
		t.Error("the node's address is usable outside its namespace")
	}
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		fi, err := os.Stat(task)
		if err != nil {
			continue // the thread exited
		}
		if got := fi.Sys().(*syscall.Stat_t).Ino; got != home {
			t.Errorf("%s is in namespace %d after Do returned, want %d", task, got, home)
		}
	}
	wantErr := errors.New("from fn")
	if err := netns.Do(node.Path, func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := netns.Do(filepath.Join(t.TempDir(), "missing"), func() error { return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
}
