package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
	"github.com/intentguard/intentguard/internal/mapper/mapsource"
	"github.com/intentguard/intentguard/internal/mapper/mapview"
)

// now is the clock the map's ages ("last seen 2 min ago") are relative to, in listings
// and in plan's roll-out report.
var now = time.Now

func newMap(s output.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Read the network mapper's map: list it, export it as ClientIntents, draw it",
		Long: `map reads the calls the network mapper observed, from the aggregator (--map
http://aggregator:8080, as the user who runs the command reaches it), from a file saved
from its /v1/edges endpoint or written by map list -o json, or from standard input
(--map -). It sends nothing anywhere and writes nothing to a cluster.`,
		Example: `  # what was observed, and as ClientIntents for review
  intentguard map list --map http://localhost:8080
  intentguard map export --map http://localhost:8080 --out-dir intents/

  # only what the intents applied do not declare yet, drawn
  intentguard map graph --map http://localhost:8080 --context prod -o mermaid`,
	}
	cmd.AddCommand(newMapList(s), newMapExport(s), newMapGraph(s))
	return cmd
}

// mapFlags are the flags every map command takes: where the map is, and what of it to
// keep.
type mapFlags struct {
	source string
	filter mapview.Filter
}

func (f *mapFlags) addTo(fs *pflag.FlagSet) {
	fs.StringVar(&f.source, "map", "", "the map: the aggregator's URL, a file saved from its /v1/edges, or - for standard input")
	fs.StringVarP(&f.filter.Namespace, "namespace", "n", "", "keep the calls with an end in this namespace")
	fs.StringVar(&f.filter.Client, "client", "", "keep the calls of this client (name, name.namespace, namespace/name or namespace/name[Kind])")
	fs.StringVar(&f.filter.Server, "server", "", "keep the calls to this server (as --client; external hosts and nodes by name)")
}

// load reads the map and keeps what the filter keeps.
func (f *mapFlags) load(ctx context.Context, s output.Streams) ([]edges.Edge, error) {
	es, err := mapsource.Load(ctx, f.source, s.In)
	if err != nil {
		return nil, err
	}
	return f.filter.Apply(es), nil
}

// intentsFlags name the intents already applied that map export and map graph compare
// the map with: files and directories, snapshots, or a live cluster.
type intentsFlags struct {
	input input.Flags
	dirs  []string
}

func (f *intentsFlags) addTo(fs *pflag.FlagSet) {
	f.input.AddTo(fs)
	fs.StringArrayVar(&f.dirs, "dir", nil, "a file or directory of the ClientIntents applied (repeatable)")
}

// given reports whether any source of intents is named.
func (f *intentsFlags) given() bool {
	return len(f.dirs) > 0 || len(f.input.Snapshots) > 0 || f.input.ReadLive || f.input.Kubeconfig != "" || f.input.Context != ""
}

// load reads the ClientIntents of the sources, in the hub version, whatever version
// each was written in.
func (f *intentsFlags) load(ctx context.Context, s output.Streams, m mapFlags) ([]v2beta1.ClientIntents, error) {
	if m.source == "-" && slices.Contains(f.dirs, "-") {
		return nil, &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--map - and --dir - cannot both read standard input")}
	}
	set, err := input.Load(ctx, f.input.Options(f.dirs, s.In))
	if err != nil {
		return nil, err
	}
	out := []v2beta1.ClientIntents{}
	for _, ci := range input.All[*v2beta1.ClientIntents](set) {
		out = append(out, *ci)
	}
	return out, nil
}

func newMapList(s output.Streams) *cobra.Command {
	var f mapFlags
	format := output.NewFormatFlag(output.Table, output.JSON, output.YAML)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the calls the network mapper observed",
		Long: `list prints the map's edges: client, server, port, the DNS names the client looked
up, how many connections, when first and last seen, and the agents (nodes) that saw
them. -o json writes the edges as the aggregator serves them, a file --map reads back.`,
		Example: `  intentguard map list --map http://localhost:8080
  intentguard map list --map http://localhost:8080 -n shop --server api
  intentguard map list --map http://localhost:8080 -o json > map.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := f.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			if es == nil {
				es = []edges.Edge{}
			}
			switch format.Format() {
			case output.JSON:
				return output.WriteJSON(s.Out, es)
			case output.YAML:
				out, err := yaml.Marshal(es)
				if err != nil {
					return fmt.Errorf("writing YAML: %w", err)
				}
				_, err = s.Out.Write(out)
				return err
			}
			return mapview.Table(s.Out, es, now())
		},
	}
	f.addTo(cmd.Flags())
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}

func newMapExport(s output.Streams) *cobra.Command {
	var (
		f             mapFlags
		in            intentsFlags
		version, file string
		outDir        string
		delta         bool
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the observed calls as ClientIntents, one per client workload",
		Long: `export writes one ClientIntents per client workload the map holds, declaring the
calls it was observed making: a workload server by name and kind, a Service as a service
target, an external host as an internet target with its DNS name (or address) and the
ports observed. Internet targets are written, but no enforcement point enforces them yet
(their status says "not enforced"). Each ClientIntents carries the evidence for its calls
in the intentguard.dev/observed annotation: per call and port, first and last seen,
connections and agents.

Calls no ClientIntents can declare (from or to a node's host network, from outside the
cluster, names a ClientIntents cannot hold) are listed on standard error with the reason.

With the intents applied (--dir, --snapshot, --live, --context or --kubeconfig), only
the calls they do not declare are written (the delta; --delta=false writes all); a
client whose calls are all declared gets nothing, and a client that has a ClientIntents
gets a copy of it with the new targets added after its own (said on standard error), so
that applying the file keeps what it declared.

--api-version writes an older served version, converted by the API's own conversion
code. The output goes to standard output, one file (-f), or a directory (--out-dir, one
file per ClientIntents, named namespace.name.yaml).`,
		Example: `  intentguard map export --map http://localhost:8080 --out-dir intents/
  intentguard map export --map map.json --dir deploy/intents/ -f new-calls.yaml
  intentguard map export --map http://localhost:8080 --context prod -n shop --api-version v1alpha3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			version = strings.TrimPrefix(version, v2beta1.GroupVersion.Group+"/")
			if !slices.Contains(export.Versions, version) {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--api-version %q: use one of %s", version, strings.Join(export.Versions, ", "))}
			}
			if file != "" && outDir != "" {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("-f and --out-dir: give one")}
			}
			if !cmd.Flags().Changed("delta") {
				delta = in.given()
			}
			if delta && !in.given() {
				return &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--delta needs the intents applied: --dir, --snapshot, --live, --context or --kubeconfig")}
			}
			ctx := cmd.Context()
			es, err := f.load(ctx, s)
			if err != nil {
				return err
			}
			var opts export.Options
			if delta {
				if opts.Declared, err = in.load(ctx, s, f); err != nil {
					return err
				}
			}
			res := export.Export(es, opts)
			reportExport(s, res, delta)
			return writeExport(s, res.Intents, version, file, outDir)
		},
	}
	f.addTo(cmd.Flags())
	in.addTo(cmd.Flags())
	cmd.Flags().StringVar(&version, "api-version", v2beta1.GroupVersion.Version, "the version to write: "+strings.Join(export.Versions, ", "))
	cmd.Flags().StringVarP(&file, "file", "f", "", "write every ClientIntents to this file")
	cmd.Flags().StringVar(&outDir, "out-dir", "", "write each ClientIntents to its own file in this directory (namespace.name.yaml)")
	cmd.Flags().BoolVar(&delta, "delta", false, "write only the calls the intents applied do not declare (default: on when they are given)")
	return cmd
}

// reportExport tells, on standard error, what the export left out and why.
func reportExport(s output.Streams, res export.Result, delta bool) {
	for _, sk := range res.Skipped {
		fmt.Fprintf(s.Err, "skipped: %s\n", sk)
	}
	if delta {
		fmt.Fprintf(s.Err, "%d observed calls already declared by the intents applied; %d ClientIntents with calls they do not declare\n", res.AlreadyDeclared, len(res.Intents))
	}
	for _, x := range res.Extended {
		fmt.Fprintf(s.Err, "note: ClientIntents %s is the one applied with %d targets added after its %d: apply it in place of that one\n", x.Intents, x.Added, x.Kept)
	}
	for _, o := range res.Omitted {
		fmt.Fprintf(s.Err, "note: %s\n", o)
	}
	for _, m := range res.Merged {
		fmt.Fprintf(s.Err, "note: %s declares the calls of every workload named so: one of them is named by the workload-name annotation, without a kind, and a ClientIntents for it names them all\n", m)
	}
	if res.Internet > 0 {
		fmt.Fprintf(s.Err, "note: %d internet targets written; no enforcement point enforces internet targets yet (their status says not enforced)\n", res.Internet)
	}
}

// writeExport writes the ClientIntents in version to standard output, file or dir.
func writeExport(s output.Streams, cis []v2beta1.ClientIntents, version, file, dir string) error {
	docs := make([][]byte, len(cis))
	for i := range cis {
		obj, err := export.InVersion(&cis[i], version)
		if err != nil {
			return err
		}
		if docs[i], err = export.Manifest(obj); err != nil {
			return err
		}
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating the output directory: %w", err)
		}
		for i := range cis {
			if err := os.WriteFile(filepath.Join(dir, export.FileName(&cis[i])), docs[i], 0o644); err != nil {
				return fmt.Errorf("writing ClientIntents %s/%s: %w", cis[i].Namespace, cis[i].Name, err)
			}
		}
		return nil
	}
	var all []byte
	for i, d := range docs {
		if i > 0 {
			all = append(all, "---\n"...)
		}
		all = append(all, d...)
	}
	if file != "" {
		if err := os.WriteFile(file, all, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
		return nil
	}
	_, err := s.Out.Write(all)
	return err
}

func newMapGraph(s output.Streams) *cobra.Command {
	var (
		f  mapFlags
		in intentsFlags
	)
	format := output.NewFormatFlag(output.DOT, output.Mermaid, output.JSON)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw the calls the network mapper observed, against the intents applied",
		Long: `graph draws the map: peers as nodes (ns/name[Kind], ns/name[Service],
external:host, node:name), one arrow per client and server labelled with the observed
ports and connections. With the intents applied (--dir, --snapshot, --live, --context or
--kubeconfig), observed calls they do not declare are drawn bold (DOT: red; labelled
"undeclared": enforcing the intents would block them) and calls they declare that were
never observed dashed ("declared, not observed").`,
		Example: `  intentguard map graph --map http://localhost:8080 | dot -Tsvg > map.svg
  intentguard map graph --map map.json --dir deploy/intents/ -n shop -o mermaid`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// Unfiltered: a declared call counts as observed by any edge of the map.
			es, err := mapsource.Load(ctx, f.source, s.In)
			if err != nil {
				return err
			}
			var declared []v2beta1.ClientIntents
			if in.given() {
				if declared, err = in.load(ctx, s, f); err != nil {
					return err
				}
			}
			g := mapview.NewGraph(es, declared, f.filter)
			switch format.Format() {
			case output.JSON:
				return output.WriteJSON(s.Out, g)
			case output.Mermaid:
				g.Mermaid(s.Out)
			default:
				g.DOT(s.Out)
			}
			return nil
		},
	}
	f.addTo(cmd.Flags())
	in.addTo(cmd.Flags())
	cmd.Flags().VarP(format, "output", "o", "output format: "+format.Usage())
	return cmd
}
