// Package input reads the objects the CLI analyses: manifests from files and
// directories, the objects of a live cluster, or both with the files overlaid on the
// cluster (what a pull request would change). intentguard's kinds arrive in the hub
// version (api/v2beta1) whatever version they were written in, converted by the API's
// own conversion code after the CRD's defaults; Kubernetes kinds are typed; everything
// else stays unstructured. Every object remembers where it was read.
package input

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Source says where an object was read.
type Source struct {
	// File is the path of the file, "-" for standard input, empty for a live object.
	File string `json:"file,omitempty"`
	// Line is the line of the file its document starts on.
	Line int `json:"line,omitempty"`
	// Document is the index of its document in the file, from 1.
	Document int `json:"document,omitempty"`
	// Item is its index in a List document, from 1; 0 when the document is the object.
	Item int `json:"item,omitempty"`
	// Cluster names the kubeconfig context of a live object.
	Cluster string `json:"cluster,omitempty"`
}

// String names the source as an editor or a reviewer finds it: file:line (document
// n[, item m]), or the cluster.
func (s Source) String() string {
	if s.File == "" {
		if s.Cluster == "" {
			return "cluster"
		}
		return "cluster " + s.Cluster
	}
	out := fmt.Sprintf("%s:%d (document %d", s.File, s.Line, s.Document)
	if s.Item > 0 {
		out += fmt.Sprintf(", item %d", s.Item)
	}
	return out + ")"
}

// Key identifies an object: its group, kind, namespace and name. Versions do not count,
// so a v1alpha3 file replaces the v2beta1 object the cluster returns.
type Key struct {
	schema.GroupKind
	Namespace, Name string
}

// String is kind.group ns/name, the form kubectl prints.
func (k Key) String() string {
	if k.Namespace == "" {
		return k.GroupKind.String() + " " + k.Name
	}
	return k.GroupKind.String() + " " + k.Namespace + "/" + k.Name
}

// KeyOf returns the key of an object read by this package (which sets every object's
// apiVersion and kind).
func KeyOf(o client.Object) Key {
	return Key{GroupKind: o.GetObjectKind().GroupVersionKind().GroupKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

// Set is the objects read, each once, with where each was read.
type Set struct {
	// Objects are in the order read: live objects first, then files in the order given.
	Objects []client.Object
	// Sources says where each object was read.
	Sources map[Key]Source
	// Pruned are the objects of the lower layers that Options.Prune took out, sorted.
	Pruned []PrunedObject
}

// PrunedObject is an intentguard object a lower layer holds that the files delete.
type PrunedObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Source is where the lower layer read it.
	Source Source `json:"source"`
}

// String is kind ns/name.
func (p PrunedObject) String() string { return p.Kind + " " + p.Namespace + "/" + p.Name }

// Source returns where o was read.
func (s *Set) Source(o client.Object) Source {
	return s.Sources[KeyOf(o)]
}

// add puts o in the set; an object with the same key replaces the earlier one in place,
// which is how local files overlay live objects.
func (s *Set) add(o client.Object, src Source) {
	k := KeyOf(o)
	if _, had := s.Sources[k]; had {
		i := slices.IndexFunc(s.Objects, func(p client.Object) bool { return KeyOf(p) == k })
		s.Objects[i] = o
	} else {
		s.Objects = append(s.Objects, o)
	}
	s.Sources[k] = src
}

// Options says what Load reads. The layers are read in order, live objects, then
// Snapshots, then Paths, and an object of a later layer replaces one with the same key
// in an earlier layer: that is how a change is laid over what runs.
type Options struct {
	// Live reads a cluster first; nil reads none.
	Live *Live
	// Snapshots are files and directories read next, typically a file written by
	// `intentguard snapshot`.
	Snapshots []string
	// Paths are files and directories of manifests ("-" for standard input).
	Paths []string
	// Namespace is given to namespaced objects of the files that name none, as kubectl
	// apply does; empty means "default".
	Namespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Prune takes out, as kubectl apply --prune does, the ClientIntents,
	// ProtectedServices and KafkaServerConfigs that the live cluster or the snapshots
	// hold in a pruned namespace and the Paths do not: that is how a change deletes
	// one. The pruned namespaces are those the Paths hold such objects in, and
	// PruneNamespaces. Without Paths nothing is pruned: the files are the change.
	Prune bool
	// PruneNamespaces are pruned too, though the Paths hold no intentguard object in
	// them (the change deletes their last one); they imply Prune.
	PruneNamespaces []string
}

// prunable are the kinds Prune takes out: those whose objects a change declares in
// full for a namespace.
var prunable = map[schema.GroupKind]bool{
	v2beta1.GroupVersion.WithKind("ClientIntents").GroupKind():     true,
	v2beta1.GroupVersion.WithKind("ProtectedService").GroupKind():  true,
	v2beta1.GroupVersion.WithKind("KafkaServerConfig").GroupKind(): true,
}

// Load reads the objects of opts. Two documents of one layer with the same key are an
// error naming both.
func Load(ctx context.Context, opts Options) (*Set, error) {
	set := &Set{Sources: map[Key]Source{}}
	if opts.Live != nil {
		objs, err := opts.Live.Read(ctx)
		if err != nil {
			return nil, err
		}
		src := Source{Cluster: opts.Live.Context}
		for _, o := range objs {
			set.add(o, src)
		}
	}
	if _, err := set.addFiles(opts.Snapshots, opts); err != nil {
		return nil, err
	}
	files, err := set.addFiles(opts.Paths, opts)
	if err != nil {
		return nil, err
	}
	if (opts.Prune || len(opts.PruneNamespaces) > 0) && len(opts.Paths) > 0 {
		set.prune(files, opts.PruneNamespaces)
	}
	return set, nil
}

// prune takes out the prunable objects of the pruned namespaces that files, the keys
// the Paths hold, do not hold.
func (s *Set) prune(files map[Key]Source, namespaces []string) {
	pruned := map[string]bool{}
	for _, ns := range namespaces {
		pruned[ns] = true
	}
	for k := range files {
		if prunable[k.GroupKind] {
			pruned[k.Namespace] = true
		}
	}
	kept := s.Objects[:0]
	for _, o := range s.Objects {
		k := KeyOf(o)
		if _, inFiles := files[k]; inFiles || !prunable[k.GroupKind] || !pruned[k.Namespace] {
			kept = append(kept, o)
			continue
		}
		s.Pruned = append(s.Pruned, PrunedObject{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Source: s.Sources[k]})
		delete(s.Sources, k)
	}
	s.Objects = kept
	slices.SortFunc(s.Pruned, func(a, b PrunedObject) int { return strings.Compare(a.String(), b.String()) })
}

// addFiles reads one layer of files into the set, and returns where it read each key.
func (s *Set) addFiles(paths []string, opts Options) (map[Key]Source, error) {
	docs, err := ReadFiles(paths, opts.Stdin)
	if err != nil {
		return nil, err
	}
	seen := map[Key]Source{}
	var errs []string
	for _, d := range docs {
		o, err := Decode(d, opts.Namespace)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		k := KeyOf(o)
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Sprintf("%s: %s is also defined at %s", d.Source, k, first))
			continue
		}
		seen[k] = d.Source
		s.add(o, d.Source)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("reading manifests:\n  %s", strings.Join(errs, "\n  "))
	}
	return seen, nil
}

// All returns the objects of the set of type T (like *v2beta1.ClientIntents or
// *corev1.Pod), in the set's order.
func All[T client.Object](s *Set) []T {
	var out []T
	for _, o := range s.Objects {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
