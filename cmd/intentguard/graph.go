package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/cli/output"
)

func newGraph(s output.Streams) *cobra.Command {
	var (
		f                   analysisFlags
		workload, namespace string
	)
	format := output.NewFormatFlag(output.DOT, output.Mermaid, output.JSON, output.SVG)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw the accesses the operator's objects would grant",
		Long: `graph runs the operator's compilers on the inputs and draws the access graph:
ns/name[Kind] nodes (ns/name[Service] for a Service target), and per enforcement point
one edge per pair, labelled with its ports (NetworkPolicy, solid) or topics and
operations (Kafka, dashed). -o svg pipes the DOT source through graphviz's dot, which
must be installed (Debian: apt-get install graphviz).`,
		Example: `  intentguard graph --dir tutorial/ | dot -Tpng > access.png
  intentguard graph --context prod --namespace shop -o mermaid
  intentguard graph --snapshot cluster.yaml --dir intents/ --workload shop/checkout -o svg > checkout.svg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var focus analysis.Focus
			if workload != "" {
				w, err := analysis.ParseEndpoint(workload)
				if err != nil {
					return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--workload: %w", err)}
				}
				focus.Workload = &w
			}
			focus.Namespace = namespace
			st, err := f.settings()
			if err != nil {
				return err
			}
			r, err := analyze(cmd.Context(), f.input.Options(f.dirs, s.In), st)
			if err != nil {
				return err
			}
			g := r.Graph(focus)
			switch format.Format() {
			case output.JSON:
				return output.WriteJSON(s.Out, g)
			case output.Mermaid:
				render.Mermaid(s.Out, g)
			case output.SVG:
				return svg(s, g)
			default:
				render.DOT(s.Out, g)
			}
			return nil
		},
	}
	f.addTo(cmd.Flags())
	cmd.Flags().StringVar(&workload, "workload", "", "keep the accesses from or to this workload (name.namespace, ns/name or ns/name[Kind])")
	cmd.Flags().StringVar(&namespace, "namespace", "", "keep the accesses with an end in this namespace")
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}

// svg renders the graph with graphviz's dot.
func svg(s output.Streams, g analysis.Graph) error {
	dot, err := exec.LookPath("dot")
	if err != nil {
		return errors.New("-o svg needs graphviz's dot on PATH (Debian: apt-get install graphviz); -o dot writes the source")
	}
	var src, stderr bytes.Buffer
	render.DOT(&src, g)
	c := exec.Command(dot, "-Tsvg")
	c.Stdin, c.Stdout, c.Stderr = &src, s.Out, &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("running dot -Tsvg: %w: %s", err, stderr.String())
	}
	return nil
}
