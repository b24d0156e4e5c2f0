package output_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/internal/cli/output"
)

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, output.ExitOK},
		{output.Findings(nil), output.ExitFindings},
		{fmt.Errorf("plan: %w", output.Findings(errors.New("2 assertions failed"))), output.ExitFindings},
		{&output.ExitError{Code: output.ExitUsage, Err: errors.New("bad flag")}, output.ExitUsage},
		{errors.New("reading x: no such file"), output.ExitUsage},
	} {
		if got := output.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestFormatFlag(t *testing.T) {
	f := output.NewFormatFlag(output.Text, output.JSON, output.Markdown)
	if f.Format() != output.Text || f.Usage() != "text|json|markdown" {
		t.Errorf("default %q, usage %q", f.Format(), f.Usage())
	}
	if err := f.Set("markdown"); err != nil || f.Format() != output.Markdown {
		t.Errorf("set markdown: %v, %q", err, f.Format())
	}
	if err := f.Set("junit"); err == nil || !strings.Contains(err.Error(), "text|json|markdown") || f.Format() != output.Markdown {
		t.Errorf("a format the command does not offer: %v, now %q", err, f.Format())
	}
}

func TestJUnitCountsFailures(t *testing.T) {
	var b strings.Builder
	err := output.WriteJUnit(&b, output.JUnitSuite{Name: "s", Cases: []output.JUnitCase{
		{Name: "ok"}, {Name: "bad <1>", Failure: &output.JUnitFailure{Message: "m", Text: "a & b"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tests="2" failures="1"`, `name="bad &lt;1&gt;"`, "a &amp; b"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JUnit output lacks %s:\n%s", want, b.String())
		}
	}
}
