package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/mapper/export"
)

const mapFile = "testdata/map/map.json"

// fixedClock makes the ages of listings reproducible: the map's last edge was seen at noon.
func fixedClock(t *testing.T) {
	t.Helper()
	saved := now
	now = func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { now = saved })
}

func TestMapGolden(t *testing.T) {
	fixedClock(t)
	m := []string{"--map", mapFile}
	applied := []string{"--dir", tutorialIntents}
	for _, tc := range []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"map-list.txt", append([]string{"map", "list"}, m...), nil},
		{"map-list-namespace.txt", append([]string{"map", "list", "-n", "kafka"}, m...), nil},
		{"map-list-client-server.json", append([]string{"map", "list", "--client", "client-other.otterize-tutorial-npol", "--server", "api.example.com", "-o", "json"}, m...), nil},
		{"map-list.yaml", append([]string{"map", "list", "--server", "otterize-tutorial-npol/server[Service]", "-o", "yaml"}, m...), nil},
		{"map-export.yaml", append([]string{"map", "export"}, m...), []string{
			"skipped: node/node-1 -> Deployment/otterize-tutorial-npol/server TCP/80: the client is a process on node node-1's host network, not a workload",
			"note: 1 internet targets written; no enforcement point enforces internet targets yet",
		}},
		{"map-export-delta.yaml", append(append([]string{"map", "export"}, m...), applied...), []string{
			"1 observed calls already declared by the intents applied; 1 ClientIntents with calls they do not declare",
		}},
		{"map-export-extend.yaml", append(append([]string{"map", "export"}, m...), "--dir", "testdata/tutorial/change"), []string{
			"note: ClientIntents otterize-tutorial-npol/client is the one applied with 1 targets added after its 1: apply it in place of that one",
			"note: ClientIntents otterize-tutorial-npol/client-other is the one applied with 2 targets added after its 1",
		}},
		{"map-export-v1alpha3.yaml", append([]string{"map", "export", "--api-version", "k8s.otterize.com/v1alpha3", "--client", "client-other"}, m...), nil},
		{"map-graph.dot", append([]string{"map", "graph"}, m...), nil},
		{"map-graph-intents.dot", append(append([]string{"map", "graph", "-n", "otterize-tutorial-npol"}, m...), "--dir", "testdata/tutorial/change"), nil},
		{"map-graph-intents.mmd", append(append([]string{"map", "graph", "-o", "mermaid"}, m...), applied...), nil},
		{"map-graph-intents.json", append(append([]string{"map", "graph", "-o", "json", "--client", "client"}, m...), applied...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := intentguard(t, "", tc.args...)
			if code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, errOut)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			golden(t, filepath.Join("golden", tc.name), out)
		})
	}
}

// TestMapExportRoundTrip: validate accepts every file export writes, in every version,
// to a directory or one file, and the files are named after their ClientIntents.
func TestMapExportRoundTrip(t *testing.T) {
	for _, v := range export.Versions {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			code, _, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--api-version", v, "--out-dir", dir)
			if code != 0 {
				t.Fatalf("export: exit %d: %s", code, errOut)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if want := []string{"otterize-tutorial-npol.client-other.yaml", "otterize-tutorial-npol.client.yaml"}; !slices.Equal(names, want) {
				t.Fatalf("files %v, want %v", names, want)
			}
			if code, out, errOut := intentguard(t, "", "validate", dir); code != 0 {
				t.Fatalf("validate refuses the export: exit %d\n%s%s", code, out, errOut)
			}
			file := filepath.Join(t.TempDir(), "all.yaml")
			if code, _, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--api-version", v, "-f", file); code != 0 {
				t.Fatalf("export -f: exit %d: %s", code, errOut)
			}
			if code, out, errOut := intentguard(t, "", "validate", file); code != 0 {
				t.Fatalf("validate refuses the export: exit %d\n%s%s", code, out, errOut)
			}
			// Read back as the operator reads them, the files declare every observed call.
			code, out, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--dir", file)
			if code != 0 || !strings.Contains(errOut, "4 observed calls already declared") {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if out != "" {
				t.Errorf("the export, applied, leaves calls undeclared:\n%s", out)
			}
		})
	}
}

// TestMapExportDeltaWritesNothingDeclared: a client whose calls are all declared gets no
// file.
func TestMapExportDeltaWritesNothingDeclared(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--dir", tutorialIntents, "--out-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "otterize-tutorial-npol.client.yaml")); !os.IsNotExist(err) {
		t.Errorf("client's calls are all declared, yet it has a file (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "otterize-tutorial-npol.client-other.yaml")); err != nil {
		t.Errorf("client-other's undeclared calls: %v", err)
	}
	// --delta=false writes every call though intents are given.
	code, out, _ := intentguard(t, "", "map", "export", "--map", mapFile, "--dir", tutorialIntents, "--delta=false")
	if code != 0 || !strings.Contains(out, "name: client\n") {
		t.Errorf("--delta=false left out client:\n%s", out)
	}
}

func TestMapUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"map", "list"}, "no map given"},
		{[]string{"map", "list", "--map", "testdata/map/absent.json"}, "reading the map"},
		{[]string{"map", "list", "--map", mapFile, "-o", "dot"}, "unknown format"},
		{[]string{"map", "export", "--map", mapFile, "--api-version", "v3"}, "use one of v2beta1"},
		{[]string{"map", "export", "--map", mapFile, "-f", "a.yaml", "--out-dir", "b"}, "give one"},
		{[]string{"map", "export", "--map", mapFile, "--delta"}, "--delta needs the intents applied"},
		{[]string{"map", "graph", "--map", "-", "--dir", "-"}, "cannot both read standard input"},
	} {
		code, _, errOut := intentguard(t, "[]", tc.args...)
		if code != output.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestMapExportExtendsTheIntentsApplied: the delta for clients that have ClientIntents
// is valid, and laid over the intents applied it declares every observed call.
func TestMapExportExtendsTheIntentsApplied(t *testing.T) {
	applied := "testdata/tutorial/change"
	dir := t.TempDir()
	if code, _, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--dir", applied, "--out-dir", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, out, errOut := intentguard(t, "", "validate", dir); code != 0 {
		t.Fatalf("validate refuses the delta: exit %d\n%s%s", code, out, errOut)
	}
	// The applied intents as the lower layer, the delta's files replacing them.
	code, out, errOut := intentguard(t, "", "map", "export", "--map", mapFile, "--snapshot", applied, "--dir", dir)
	if code != 0 || !strings.Contains(errOut, "4 observed calls already declared") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "" {
		t.Errorf("the delta, applied over the intents, leaves calls undeclared:\n%s", out)
	}
}

// TestMapExportSaysWhatItSkips: peers no ClientIntents can name are listed on standard
// error with the reason, never dropped silently.
func TestMapExportSaysWhatItSkips(t *testing.T) {
	m := `[{"client":{"kind":"workload","name":"orphan","workloadKind":"Pod"},"server":{"kind":"workload","namespace":"shop","name":"api"},"port":80,"protocol":"TCP"},
	{"client":{"kind":"workload","namespace":"shop","name":"web"},"server":{"kind":"node","name":"node-1"},"port":10250,"protocol":"TCP"}]`
	code, out, errOut := intentguard(t, m, "map", "export", "--map", "-")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{
		"skipped: Pod//orphan -> shop/api TCP/80: the client workload has no namespace",
		"skipped: shop/web -> node/node-1 TCP/10250: the server is node node-1's host network",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}
