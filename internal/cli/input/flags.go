package input

import (
	"io"

	"github.com/spf13/pflag"
)

// ClusterFlags name the cluster to read: --kubeconfig and --context, as kubectl takes
// them.
type ClusterFlags struct {
	Kubeconfig, Context string
}

// AddTo registers the flags.
func (f *ClusterFlags) AddTo(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.Context, "context", "", "kubeconfig context (default: the current one)")
}

// Live returns the reader of the cluster the flags name, limited to namespaces (none
// for all).
func (f *ClusterFlags) Live(namespaces []string) *Live {
	return &Live{Kubeconfig: f.Kubeconfig, Context: f.Context, Namespaces: namespaces}
}

// Flags are the input flags of the commands that analyse a set of objects: files and
// directories come as arguments; these add the layers under them.
type Flags struct {
	ClusterFlags
	// ReadLive reads the cluster even when neither --kubeconfig nor --context is given.
	ReadLive bool
	// Snapshots are --snapshot files or directories.
	Snapshots []string
	// DefaultNamespace is --default-namespace.
	DefaultNamespace string
	// Namespaces limits what is read from the cluster; commands set it from their own
	// flags (none registers it here, so that each can give -n its meaning).
	Namespaces []string
	// Prune is --prune and PruneNamespaces --prune-namespace (see Options).
	Prune           bool
	PruneNamespaces []string
}

// AddTo registers the flags.
func (f *Flags) AddTo(fs *pflag.FlagSet) {
	f.ClusterFlags.AddTo(fs)
	fs.BoolVar(&f.ReadLive, "live", false, "read the cluster of the current context under the files (implied by --kubeconfig and --context)")
	fs.StringArrayVar(&f.Snapshots, "snapshot", nil, "a file or directory written by `intentguard snapshot`, read under the files (repeatable)")
	fs.StringVar(&f.DefaultNamespace, "default-namespace", "default", "namespace of the namespaced objects of the files that name none")
	fs.BoolVar(&f.Prune, "prune", false, "treat the ClientIntents, ProtectedServices and KafkaServerConfigs that the cluster or snapshots hold, in a namespace the files hold such objects in, as deleted when the files do not hold them")
	fs.StringArrayVar(&f.PruneNamespaces, "prune-namespace", nil, "a namespace to prune though the files hold no intentguard object in it (repeatable; implies --prune)")
}

// Options returns what Load reads for these flags and the files and directories paths.
func (f *Flags) Options(paths []string, stdin io.Reader) Options {
	opts := Options{Snapshots: f.Snapshots, Paths: paths, Namespace: f.DefaultNamespace, Stdin: stdin, Prune: f.Prune, PruneNamespaces: f.PruneNamespaces}
	if f.ReadLive || f.Kubeconfig != "" || f.Context != "" {
		opts.Live = f.ClusterFlags.Live(f.Namespaces)
	}
	return opts
}
