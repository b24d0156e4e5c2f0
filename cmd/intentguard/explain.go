package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/cli/output"
)

func newExplain(s output.Streams) *cobra.Command {
	var (
		f               analysisFlags
		port, topic, op string
	)
	format := output.NewFormatFlag(output.Text, output.JSON)
	cmd := &cobra.Command{
		Use:   "explain FROM TO [--port P | --topic T --op O]",
		Short: "Say whether FROM may reach TO once the operator has acted, and why",
		Long: `explain runs the operator's compilers on the inputs and answers whether FROM may
reach TO: on a port, through the NetworkPolicies the operator would write (and the
inputs' own), evaluated by an independent evaluator; or on a Kafka topic with an
operation (an intents operation: produce, consume, describe, ...), through the ACLs it
would hold. The answer comes with the chain intent -> generated object -> rule, or for
a denial what the intents lack; without any object of the point applying, the
cluster's default decides, and explain says so.

FROM and TO are name.namespace, ns/name or ns/name[Kind] (ns/name[Service] for the
pods behind a Service). Without --port, every port of the Services in front of TO is
evaluated.`,
		Example: `  intentguard explain client.otterize-tutorial-npol server.otterize-tutorial-npol --dir tutorial/
  intentguard explain shop/checkout[Deployment] shop/orders[Service] --port 9090 --context prod
  intentguard explain client.shop kafka.kafka --topic orders --op produce --snapshot cluster.yaml --dir intents/`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := analysis.ParseEndpoint(args[0])
			if err != nil {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("FROM: %w", err)}
			}
			to, err := analysis.ParseEndpoint(args[1])
			if err != nil {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("TO: %w", err)}
			}
			if port != "" && (topic != "" || op != "") {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("give --port or --topic and --op, not both")}
			}
			st, err := f.settings()
			if err != nil {
				return err
			}
			r, err := analyze(cmd.Context(), f.input.Options(f.dirs, s.In), st)
			if err != nil {
				return err
			}
			es, err := r.Explain(analysis.Query{From: from, To: to, Port: port, Topic: topic, Operation: op})
			if err != nil {
				return err
			}
			if format.Format() == output.JSON {
				return output.WriteJSON(s.Out, es)
			}
			render.Explanations(s.Out, es)
			return nil
		},
	}
	f.addTo(cmd.Flags())
	cmd.Flags().StringVar(&port, "port", "", "port: 8080, UDP/53 or a port name")
	cmd.Flags().StringVar(&topic, "topic", "", "Kafka topic")
	cmd.Flags().StringVar(&op, "op", "", "Kafka operation, as intents name it (produce, consume, describe, ...)")
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}
