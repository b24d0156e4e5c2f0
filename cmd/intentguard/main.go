// Command intentguard analyses intentguard's objects offline or against a cluster with
// the operator's own code: validate checks files as the API server and the admission
// webhook would, snapshot saves the cluster facts the other commands need offline, and
// plan, explain and graph run the operator's compilers to say what a change does, why a
// call is allowed or denied, and who may reach whom.
// Installed as kubectl-intentguard, it is also the kubectl plugin `kubectl intentguard`.
//
// Exit codes: 0 when nothing is wrong, 1 when the input fails its checks, 2 when the
// command cannot run (usage, files, cluster), 3 when plan's --fail-on refuses a change.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/intentguard/intentguard/internal/cli/output"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, filepath.Base(os.Args[0]), os.Args[1:], output.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes the command line args as the binary named name, and returns the exit
// code.
func run(ctx context.Context, name string, args []string, s output.Streams) int {
	root := newRoot(s, strings.HasPrefix(name, "kubectl-"))
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := output.CodeOf(err)
	if err != nil && !isBare(err) {
		fmt.Fprintln(s.Err, "error:", err)
	}
	return code
}

// isBare reports whether err only carries an exit code, its report having been written.
func isBare(err error) bool {
	e, ok := err.(*output.ExitError)
	return ok && e.Err == nil
}
