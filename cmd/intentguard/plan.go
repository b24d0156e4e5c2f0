package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/analysis/rollout"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/mapper/mapsource"
)

// planReport is plan's JSON answer.
type planReport struct {
	// Pruned are the intentguard objects --prune takes out of the new state: those the
	// change deletes.
	Pruned []input.PrunedObject `json:"pruned"`
	analysis.Change
	// Failures are the assertions of --expect that the new state breaks.
	Failures []analysis.Failure `json:"failedAssertions"`
	// Map is, with --map, what the new state's policies would do to the observed calls.
	Map *mapReport `json:"map,omitempty"`
}

// mapReport is the roll-out report of plan --map.
type mapReport struct {
	// Source is where the map was read; Calls how many observed calls it holds.
	Source string `json:"source"`
	Calls  int    `json:"calls"`
	// Servers are the servers the change protects or changes, and those in shadow mode.
	Servers []rollout.Server `json:"servers"`
}

func newPlan(s output.Streams) *cobra.Command {
	var (
		f      analysisFlags
		base   []string
		expect string
		failOn []string
		mapSrc string
	)
	format := output.NewFormatFlag(output.Text, output.JSON, output.Markdown)
	cmd := &cobra.Command{
		Use:   "plan --dir NEW [--base DIR | --context CTX] [--map SRC]",
		Short: "Show the accesses a change adds and removes, and what the operator would write",
		Long: `plan runs the operator's compilers on two states and prints the difference: per
enforcement point, the accesses (from, to, port or topic and operation) removed, then
added; and the NetworkPolicies and Kafka ACLs the operator would create, update or
delete.

The old state is --base (files and directories), or the live cluster (--context,
--kubeconfig or --live), with --snapshot files under either; the new state is the
same with the --dir files laid over it (over the cluster, not over --base: --base
and --dir are two versions of the same files).

Files laid over a cluster or snapshot cannot delete an object: with --prune, the
ClientIntents, ProtectedServices and KafkaServerConfigs the cluster or snapshots hold
in a namespace the files hold such objects in, and the files do not, are deleted
(as kubectl apply --prune does); --prune-namespace NS prunes a namespace the files
hold none in. The deleted objects are listed first.

With --map (the mapper aggregator's URL, a file saved from its /v1/edges, or - for
standard input), plan also says, for each server the change protects or changes and
each server in shadow mode, which observed callers its NetworkPolicies would block:
"if you protect it now, these observed callers would be blocked". A server in shadow
mode is judged as if a ProtectedService named it.

Exit codes: 0, 1 when an --expect assertion fails on the new state, 2 when plan
cannot run, 3 when --fail-on refuses the change (--fail-on blocked: an observed
caller would be blocked).`,
		Example: `  # what a pull request changes, against the cluster
  intentguard plan --dir deploy/intents --context prod -o markdown

  # two checkouts of the same files, with the cluster's facts from a snapshot
  intentguard plan --snapshot cluster.yaml --base main/intents --dir intents --fail-on removed

  # a pull request that deletes intents files, against the cluster
  intentguard plan --dir deploy/intents --context prod --prune

  # and the accesses the team pins must hold afterwards
  intentguard plan --snapshot cluster.yaml --base main/intents --dir intents --expect expect.yaml

  # in shadow mode: which observed callers would protecting each server block?
  # (the map from the aggregator, through kubectl port-forward)
  intentguard plan --context prod --shadow-mode --dir intents --map http://localhost:8080

  # in CI: refuse a change that would block a caller the mapper saw
  intentguard plan --snapshot cluster.yaml --base main/intents --dir intents --map map.json --fail-on blocked`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.dirs) == 0 {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--dir is required")}
			}
			for _, v := range failOn {
				if v != "removed" && v != "added" && v != "blocked" {
					return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--fail-on %q: use removed, added or blocked", v)}
				}
			}
			if slices.Contains(failOn, "blocked") && mapSrc == "" {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--fail-on blocked needs --map")}
			}
			if mapSrc == "-" && (slices.Contains(f.dirs, "-") || slices.Contains(base, "-")) {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("standard input holds either the map or manifests, not both")}
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
			oldSet, old, err := loadAndAnalyze(ctx, oldOpts, st)
			if err != nil {
				return fmt.Errorf("reading the old state: %w", err)
			}
			nextSet, next, err := loadAndAnalyze(ctx, newOpts, st)
			if err != nil {
				return fmt.Errorf("reading the new state: %w", err)
			}
			report := planReport{Pruned: deleted(oldSet, nextSet), Change: analysis.Diff(old, next), Failures: []analysis.Failure{}}
			if exp != nil {
				report.Failures = next.Check(exp)
			}
			if mapSrc != "" {
				if report.Map, err = observedCallers(ctx, mapSrc, s.In, next, st, report.Change); err != nil {
					return err
				}
			}
			switch format.Format() {
			case output.JSON:
				if err := output.WriteJSON(s.Out, report); err != nil {
					return err
				}
			case output.Markdown:
				if len(report.Pruned) > 0 {
					fmt.Fprintf(s.Out, "**Deleted** (pruned): %s\n\n", strings.Join(prunedNames(report.Pruned, "`"), ", "))
				}
				render.PlanMarkdown(s.Out, report.Change, report.Failures)
				if report.Map != nil {
					render.RolloutMarkdown(s.Out, report.Map.Servers, now())
				}
			default:
				if len(report.Pruned) > 0 {
					fmt.Fprintf(s.Out, "Deleted by the change (pruned): %d\n  %s\n", len(report.Pruned), strings.Join(prunedNames(report.Pruned, ""), "\n  "))
				}
				render.PlanText(s.Out, report.Change)
				if report.Map != nil {
					fmt.Fprintf(s.Out, "\nObserved callers (%d calls in the map from %s):\n", report.Map.Calls, report.Map.Source)
					render.RolloutText(s.Out, report.Map.Servers, now())
				}
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
			if n := blocked(report.Map); slices.Contains(failOn, "blocked") && n > 0 {
				return &output.ExitError{Code: output.ExitRefused, Err: fmt.Errorf("--fail-on blocked: %d observed callers would be blocked", n)}
			}
			return nil
		},
	}
	f.addTo(cmd.Flags())
	cmd.Flags().StringArrayVar(&base, "base", nil, "files and directories of the old state (default: the cluster, or nothing)")
	cmd.Flags().StringVar(&expect, "expect", "", "assertions file (expect: {allow: [...], deny: [...]}) checked on the new state")
	cmd.Flags().StringSliceVar(&failOn, "fail-on", nil, "exit 3 when the change removes (removed) or adds (added) an access, or an observed caller would be blocked (blocked, with --map)")
	cmd.Flags().StringVar(&mapSrc, "map", "", "the network map: the mapper aggregator's URL, a file saved from its "+mapsource.EdgesPath+", or - for standard input")
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}

// observedCallers judges the map's observed calls under the new state's policies, for
// the servers the change protects or changes and those in shadow mode.
func observedCallers(ctx context.Context, src string, stdin io.Reader, next *analysis.Result, st settings, change analysis.Change) (*mapReport, error) {
	observed, err := mapsource.Load(ctx, src, stdin)
	if err != nil {
		return nil, err
	}
	servers, err := rollout.Report(ctx, next, analysis.Options{Enforcement: st.rollout}, observed)
	if err != nil {
		return nil, fmt.Errorf("judging the observed calls: %w", err)
	}
	servers = rollout.ForChange(servers, change)
	if servers == nil {
		servers = []rollout.Server{}
	}
	return &mapReport{Source: src, Calls: len(observed), Servers: servers}, nil
}

// blocked counts the observed callers the report says would be blocked.
func blocked(m *mapReport) int {
	if m == nil {
		return 0
	}
	return rollout.Stopped(m.Servers)
}

// deleted returns the objects the new state prunes and the old one does not: those
// the change deletes (with --base, an object neither version of the files holds is
// pruned from both).
func deleted(old, next *input.Set) []input.PrunedObject {
	out := []input.PrunedObject{}
	for _, p := range next.Pruned {
		if !slices.ContainsFunc(old.Pruned, func(o input.PrunedObject) bool { return o.String() == p.String() }) {
			out = append(out, p)
		}
	}
	return out
}

// prunedNames names pruned objects, kind ns/name, with where they were read, the
// name between quote.
func prunedNames(pruned []input.PrunedObject, quote string) []string {
	var out []string
	for _, p := range pruned {
		out = append(out, fmt.Sprintf("%s%s%s (%s)", quote, p, quote, p.Source))
	}
	return out
}
