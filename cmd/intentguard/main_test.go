package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/cli/output"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// intentguard runs the command line and returns its exit code, standard output and
// standard error.
func intentguard(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), "intentguard", args, output.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// golden compares got with the file testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (go test ./cmd/intentguard -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./cmd/intentguard -update rewrites it after review):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestValidateGolden(t *testing.T) {
	for _, dir := range []struct {
		name string
		code int
	}{{"valid", output.ExitOK}, {"invalid", output.ExitFindings}} {
		for _, format := range []string{"text", "json", "junit"} {
			t.Run(dir.name+"/"+format, func(t *testing.T) {
				code, out, errOut := intentguard(t, "", "validate", "-o", format, filepath.Join("testdata", "validate", dir.name))
				if code != dir.code {
					t.Errorf("exit code %d, want %d; stderr:\n%s", code, dir.code, errOut)
				}
				if errOut != "" {
					t.Errorf("validate wrote to standard error:\n%s", errOut)
				}
				golden(t, filepath.Join("validate", dir.name+"."+format+".golden"), out)
			})
		}
	}
}

func TestValidateExitCodes(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join("testdata", "validate", "valid", "intents.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"standard input", string(valid), []string{"validate", "-"}, output.ExitOK, ""},
		{"invalid standard input", "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: x}\nspec: {}\n", []string{"validate", "-"}, output.ExitFindings, ""},
		{"missing file", "", []string{"validate", "testdata/validate/absent.yaml"}, output.ExitUsage, "no such file"},
		{"no argument", "", []string{"validate"}, output.ExitUsage, "requires at least 1 arg"},
		{"unknown format", "", []string{"validate", "-o", "xml", "testdata/validate/valid"}, output.ExitUsage, `unknown format "xml"`},
		{"unknown flag", "", []string{"validate", "--frobnicate", "testdata/validate/valid"}, output.ExitUsage, "unknown flag"},
		{"unknown command", "", []string{"frobnicate"}, output.ExitUsage, "unknown command"},
		{"snapshot without a file", "", []string{"snapshot"}, output.ExitUsage, `"output" not set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := intentguard(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q does not say %q", errOut, tc.stderr)
			}
		})
	}
}

// TestEveryCommandHasHelpWithExamples walks the command tree: each command documents
// itself with examples, and --help answers on standard output with exit code 0.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Short == "" || c.Example == "" {
			t.Errorf("%q has no short description or no examples", c.CommandPath())
		}
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		code, out, _ := intentguard(t, "", args...)
		if code != output.ExitOK || !strings.Contains(out, "Examples:") {
			t.Errorf("%v: exit code %d, output:\n%s", args, code, out)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(output.Streams{}, false))
}

func TestKubectlPluginName(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), "kubectl-intentguard", []string{"validate", "--help"}, output.Streams{In: strings.NewReader(""), Out: &out, Err: &out})
	if code != output.ExitOK || !strings.Contains(out.String(), "kubectl intentguard validate FILE") {
		t.Errorf("installed as a kubectl plugin, the help does not say kubectl intentguard:\n%s", out.String())
	}
}
