package main

import (
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/cli/snapshot"
)

func newSnapshot(s output.Streams) *cobra.Command {
	var (
		cluster    input.ClusterFlags
		file       string
		namespaces []string
	)
	cmd := &cobra.Command{
		Use:   "snapshot -o FILE",
		Short: "Save the cluster facts that offline commands cannot know, as manifests",
		Long: `snapshot reads a cluster (read-only: it only lists) and writes the facts the operator's
decisions depend on and manifests do not say, as plain multi-document YAML:

  - Namespaces (labels);
  - Pods (labels, annotations, owners, service account, container ports, phase, IPs);
  - Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs (selector and
    pod template labels and annotations), and the owners of pods of other kinds
    (metadata only);
  - Services (selector, ports) and the DNS Service in kube-system;
  - NetworkPolicies;
  - ClientIntents, ProtectedServices and KafkaServerConfigs (spec, in v2beta1).

Managed fields, kubectl's last-applied annotation, container images, commands and
environment are left out; Secrets and ConfigMaps are never read. The file is read back
with --snapshot (or as any other file or directory), under the files of a change.`,
		Example: `  # the whole cluster of the current context
  intentguard snapshot -o cluster.yaml

  # two namespaces of the prod context (the DNS Service is always included)
  intentguard snapshot -o shop.yaml --context prod -n shop -n payments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "-" {
				_, err := snapshot.Write(cmd.Context(), s.Out, cluster.Live(namespaces), time.Now())
				return err
			}
			f, err := os.Create(file)
			if err != nil {
				return fmt.Errorf("creating the snapshot file: %w", err)
			}
			n, err := snapshot.Write(cmd.Context(), f, cluster.Live(namespaces), time.Now())
			if closeErr := f.Close(); err == nil && closeErr != nil {
				err = fmt.Errorf("writing the snapshot file: %w", closeErr)
			}
			if err != nil {
				return err
			}
			logr.FromContextOrDiscard(cmd.Context()).Info("snapshot written", "objects", n, "file", file)
			return nil
		},
	}
	cluster.AddTo(cmd.Flags())
	cmd.Flags().StringVarP(&file, "output", "o", "", `file to write ("-" for standard output)`)
	cmd.Flags().StringArrayVarP(&namespaces, "namespace", "n", nil, "read only this namespace (repeatable; default: all)")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}
