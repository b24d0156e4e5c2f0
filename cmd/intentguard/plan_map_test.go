package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/cli/output"
)

const tutorialMap = "testdata/tutorial/map.json"

// TestPlanMapGolden runs plan --map on the tutorial with a map of observed calls, in
// every output format, with and without shadow mode, and with --fail-on blocked; the
// map's times are read against a fixed clock.
func TestPlanMapGolden(t *testing.T) {
	defer func(was func() time.Time) { now = was }(now)
	now = func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	change := []string{"plan", "--snapshot", tutorialCluster, "--base", tutorialIntents, "--dir", tutorialChange, "--map", tutorialMap}
	shadow := []string{"plan", "--snapshot", tutorialCluster, "--dir", tutorialIntents, "--shadow-mode", "--map", tutorialMap}
	mapFile, err := os.ReadFile(tutorialMap)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
	}{
		{"plan-map.txt", "", change, 0},
		{"plan-map.json", "", append(change, "-o", "json"), 0},
		{"plan-map.md", "", append(change, "-o", "markdown"), 0},
		{"plan-map-shadow.txt", "", shadow, 0},
		{"plan-map-shadow.md", "", append(shadow, "-o", "markdown"), 0},
		{"plan-map-shadow-fail-on-blocked.txt", "", append(shadow, "--fail-on", "blocked"), output.ExitRefused},
		{"plan-map-namespace-enforced.txt", string(mapFile), []string{"plan", "--snapshot", tutorialCluster, "--dir", tutorialIntents, "--shadow-mode",
			"--enforced-namespaces", "otterize-tutorial-npol", "--base", tutorialIntents, "--map", "-"}, 0},
		{"plan-map-nothing-blocked.txt", "", []string{"plan", "--snapshot", tutorialCluster, "--dir", tutorialChange, "--map", "testdata/tutorial/map-declared.json", "--fail-on", "blocked"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := intentguard(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			golden(t, filepath.Join("golden", tc.name), out)
		})
	}
}

// TestPlanMapUsageErrors checks that plan refuses --fail-on blocked without a map, one
// standard input for both the map and manifests, and a map it cannot read.
func TestPlanMapUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"plan", "--dir", tutorialIntents, "--fail-on", "blocked"},
		{"plan", "--dir", "-", "--map", "-"},
		{"plan", "--dir", tutorialIntents, "--map", "testdata/tutorial/absent.json"},
	} {
		code, _, errOut := intentguard(t, "[]", args...)
		if code != output.ExitUsage {
			t.Errorf("%v: exit %d, stderr %q; want exit 2", args, code, errOut)
		}
	}
}
