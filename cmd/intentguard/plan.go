package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/cli/output"
)

// planReport is plan's JSON answer.
type planReport struct {
	analysis.Change
	// Failures are the assertions of --expect that the new state breaks.
	Failures []analysis.Failure `json:"failedAssertions"`
}

func newPlan(s output.Streams) *cobra.Command {
	var (
		f      analysisFlags
		base   []string
		expect string
		failOn []string
	)
	format := output.NewFormatFlag(output.Text, output.JSON, output.Markdown)
	cmd := &cobra.Command{
		Use:   "plan --dir NEW [--base DIR | --context CTX]",
		Short: "Show the accesses a change adds and removes, and what the operator would write",
		Long: `plan runs the operator's compilers on two states and prints the difference: per
enforcement point, the accesses (from, to, port or topic and operation) removed, then
added; and the NetworkPolicies and Kafka ACLs the operator would create, update or
delete.

The old state is --base (files and directories), or the live cluster (--context,
--kubeconfig or --live), with --snapshot files under either; the new state is the
same with the --dir files laid over it (over the cluster, not over --base: --base
and --dir are two versions of the same files).

Exit codes: 0, 1 when an --expect assertion fails on the new state, 2 when plan
cannot run, 3 when --fail-on refuses the change.`,
		Example: `  # what a pull request changes, against the cluster
  intentguard plan --dir deploy/intents --context prod -o markdown

  # two checkouts of the same files, with the cluster's facts from a snapshot
  intentguard plan --snapshot cluster.yaml --base main/intents --dir intents --fail-on removed

  # and the accesses the team pins must hold afterwards
  intentguard plan --snapshot cluster.yaml --base main/intents --dir intents --expect expect.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.dirs) == 0 {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--dir is required")}
			}
			for _, v := range failOn {
				if v != "removed" && v != "added" {
					return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--fail-on %q: use removed or added", v)}
				}
			}
			var exp *analysis.Expectations
			if expect != "" {
				var err error
				if exp, err = analysis.LoadExpectations(expect); err != nil {
					return err
				}
			}
			st, err := f.settings()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			oldOpts, newOpts := f.input.Options(base, s.In), f.input.Options(f.dirs, s.In)
			if len(base) > 0 && oldOpts.Live != nil {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("the old state is --base or the cluster, not both")}
			}
			old, err := analyze(ctx, oldOpts, st)
			if err != nil {
				return fmt.Errorf("reading the old state: %w", err)
			}
			next, err := analyze(ctx, newOpts, st)
			if err != nil {
				return fmt.Errorf("reading the new state: %w", err)
			}
			report := planReport{Change: analysis.Diff(old, next), Failures: []analysis.Failure{}}
			if exp != nil {
				report.Failures = next.Check(exp)
			}
			switch format.Format() {
			case output.JSON:
				if err := output.WriteJSON(s.Out, report); err != nil {
					return err
				}
			case output.Markdown:
				render.PlanMarkdown(s.Out, report.Change, report.Failures)
			default:
				render.PlanText(s.Out, report.Change)
				if len(report.Failures) > 0 {
					fmt.Fprintln(s.Out)
					render.Failures(s.Out, report.Failures)
				}
			}
			if len(report.Failures) > 0 {
				return output.Findings(fmt.Errorf("%d assertions fail on the new state", len(report.Failures)))
			}
			if slices.Contains(failOn, "removed") && len(report.Removed) > 0 ||
				slices.Contains(failOn, "added") && len(report.Added) > 0 {
				return &output.ExitError{Code: output.ExitRefused, Err: fmt.Errorf("--fail-on: %d accesses removed, %d added", len(report.Removed), len(report.Added))}
			}
			return nil
		},
	}
	f.addTo(cmd.Flags())
	cmd.Flags().StringArrayVar(&base, "base", nil, "files and directories of the old state (default: the cluster, or nothing)")
	cmd.Flags().StringVar(&expect, "expect", "", "assertions file (expect: {allow: [...], deny: [...]}) checked on the new state")
	cmd.Flags().StringSliceVar(&failOn, "fail-on", nil, "exit 3 when the change removes (removed) or adds (added) an access")
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}
