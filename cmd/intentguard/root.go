package main

import (
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/internal/cli/output"
)

// pluginName is how kubectl shows the binary when it is installed as kubectl-intentguard.
const pluginName = "kubectl intentguard"

// newRoot builds the command tree; asPlugin names it as kubectl shows it.
func newRoot(s output.Streams, asPlugin bool) *cobra.Command {
	var verbosity int
	root := &cobra.Command{
		Use:   "intentguard",
		Short: "Check and explain intentguard's intents offline, with the operator's own code",
		Long: `intentguard reads ClientIntents, ProtectedServices and KafkaServerConfigs (every
served version) from files, a snapshot of a cluster, or a live cluster, and answers
with what the operator would do.

Data goes to standard output, logs and errors to standard error. Exit codes: 0 when
nothing is wrong, 1 when the input fails its checks, 2 when the command cannot run,
3 when plan's --fail-on refuses a change.`,
		Example: `  # check manifests before they are applied, as CI would
  intentguard validate deploy/intents/

  # save the cluster facts files cannot say (pods, labels, Services)
  intentguard snapshot -o cluster.yaml --context prod

  # what a change adds and removes, and whether a call is allowed
  intentguard plan --context prod --dir deploy/intents -o markdown
  intentguard explain checkout.shop orders.shop --port 8080 --context prod`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			log := output.Logger(s.Err, verbosity)
			ctrllog.SetLogger(log)
			cmd.SetContext(logr.NewContext(cmd.Context(), log))
		},
	}
	if asPlugin {
		root.Use = pluginName
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: pluginName}
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &output.ExitError{Code: output.ExitUsage, Err: err}
	})
	root.PersistentFlags().IntVarP(&verbosity, "verbosity", "v", 0, "log verbosity on standard error (0: only what needs reading)")
	root.AddCommand(newValidate(s), newSnapshot(s), newPlan(s), newExplain(s), newGraph(s), newMap(s))
	return root
}
