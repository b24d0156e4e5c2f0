package main

import (
	"fmt"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/cli/validation"
)

func newValidate(s output.Streams) *cobra.Command {
	format := output.NewFormatFlag(output.Text, validation.Formats...)
	var namespace, expect string
	var snapshots []string
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR|- ...",
		Short: "Check intentguard objects as the API server and the operator's webhook would, offline",
		Long: `validate checks every ClientIntents, ProtectedService and KafkaServerConfig in the
files and directories given (searched recursively for .yaml, .yml and .json; "-" reads
standard input), in whichever served version each is written:

  - the CRD's OpenAPI schema (types, enums, patterns, required and unknown fields) and its
    CEL rules, for that version;
  - the admission webhook's rules, on the object converted to v2beta1: target names,
    targets of kinds intentguard does not enforce, one ClientIntents per workload and one
    ProtectedService per server (compared with the other objects of the files).

Objects of other kinds are read but not checked. Errors name the file, the line where
the document starts, the object and the field as written.

With --expect, the assertions file is checked too, on the files (over --snapshot files
for the cluster's pods and labels), as plan checks it.

Exit codes: 0 all valid, 1 some object invalid (or a document unreadable) or an
assertion failed, 2 usage or I/O error.`,
		Example: `  # every manifest under deploy/
  intentguard validate deploy/

  # in CI, as a test report
  intentguard validate -o junit deploy/ > validate.xml

  # a file rendered by another tool
  helm template charts/shop | intentguard validate -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			docs, err := input.ReadFiles(args, s.In)
			var unreadable []*input.ParseError
			if err != nil {
				var ok bool
				if unreadable, ok = input.ParseErrors(err); !ok {
					return err
				}
			}
			report, err := validation.Validate(cmd.Context(), docs, unreadable, namespace)
			if err != nil {
				return err
			}
			logr.FromContextOrDiscard(cmd.Context()).V(1).Info("validated", "documents", len(docs)+len(unreadable), "checked", len(report.Objects), "valid", report.Valid)
			if err := report.Write(s.Out, format.Format()); err != nil {
				return err
			}
			if !report.Valid {
				return output.Findings(nil)
			}
			if expect != "" {
				opts := input.Options{Snapshots: snapshots, Paths: args, Namespace: namespace, Stdin: s.In}
				return checkExpectations(cmd.Context(), opts, expect, s.Out, format.Format() == output.Text)
			}
			return nil
		},
	}
	cmd.Flags().VarP(format, "output", "o", fmt.Sprintf("output format: %s", format.Usage()))
	cmd.Flags().StringVar(&expect, "expect", "", "assertions file (expect: {allow: [...], deny: [...]}) checked on the files")
	cmd.Flags().StringArrayVar(&snapshots, "snapshot", nil, "with --expect, cluster facts read under the files (repeatable)")
	cmd.Flags().StringVar(&namespace, "default-namespace", "default", "namespace of the objects that name none, as kubectl apply -n would create them")
	return cmd
}
