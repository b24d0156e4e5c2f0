package main

import (
	"os"
	"slices"
	"testing"

	"github.com/intentguard/intentguard/internal/testsupport/process"
)

func TestStatFields(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       []string
	}{
		{"plain", "42 (etcd) S 7 42 42 0 -1 4194560 1 0 0 0 150 30 0 0", []string{"(etcd)", "S", "7", "42", "42", "0", "-1", "4194560", "1", "0", "0", "0", "150", "30", "0", "0"}},
		{"spaces and parentheses in the name", "9 (a (b) c) R 1 9", []string{"(a (b) c)", "R", "1", "9"}},
		{"no name", "9 R 1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statFields(tc.stat); !slices.Equal(got, tc.want) {
				t.Fatalf("statFields(%q) = %q, want %q", tc.stat, got, tc.want)
			}
		})
	}
}

// TestCPUOfThisProcess reads this test's own CPU time after it has used some: the fields
// taken from /proc must be utime and stime, which only grow.
func TestCPUOfThisProcess(t *testing.T) {
	before, err := process.CPUTimeOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 300_000_000 {
		x ^= i
	}
	after, err := process.CPUTimeOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("CPU time went from %v to %v after a busy loop (%d)", before, after, x)
	}
}
