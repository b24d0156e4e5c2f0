package input

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Live reads a cluster: the objects the operator's decisions depend on, never Secrets
// nor ConfigMaps. It only lists.
type Live struct {
	// Kubeconfig is the kubeconfig file; empty follows $KUBECONFIG and ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty uses the current one.
	Context string
	// Namespaces limits the namespaced objects (and the Namespaces) read; empty reads
	// all. The DNS Service in kube-system is read in any case.
	Namespaces []string
	// Config, when set, is used instead of Kubeconfig and Context.
	Config *rest.Config
}

// dnsNamespace and dnsServices are where clusters run their DNS Service, which every
// workload's egress must reach.
const dnsNamespace = "kube-system"

var dnsServices = []string{"kube-dns", "coredns"}

// liveLists are the kinds Live reads, as empty lists.
func liveLists() []client.ObjectList {
	return []client.ObjectList{
		&corev1.NamespaceList{},
		&corev1.PodList{},
		&corev1.ServiceList{},
		&appsv1.DeploymentList{},
		&appsv1.ReplicaSetList{},
		&appsv1.StatefulSetList{},
		&appsv1.DaemonSetList{},
		&batchv1.JobList{},
		&batchv1.CronJobList{},
		&networkingv1.NetworkPolicyList{},
		&v2beta1.ClientIntentsList{},
		&v2beta1.ProtectedServiceList{},
		&v2beta1.KafkaServerConfigList{},
	}
}

// RESTConfig returns the configuration for the API server Live reads.
func (l *Live) RESTConfig() (*rest.Config, error) {
	if l.Config != nil {
		return l.Config, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = l.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: l.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return cfg, nil
}

// Read lists the cluster's objects, in a stable order (kind by kind as liveLists names
// them, then by namespace and name), then the owners of other kinds, as metadata, each
// with its apiVersion and kind set. A kind whose CRD the cluster does not have is
// skipped, and logged.
func (l *Live) Read(ctx context.Context) ([]client.Object, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	log := logr.FromContextOrDiscard(ctx)
	var out []client.Object
	for _, list := range liveLists() {
		objs, err := l.list(ctx, c, list)
		if meta.IsNoMatchError(err) {
			log.Info("the cluster does not serve this kind; skipping it", "list", fmt.Sprintf("%T", list))
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	owners, err := readOwners(ctx, c, out)
	if err != nil {
		return nil, err
	}
	out = append(out, owners...)
	if len(l.Namespaces) > 0 && !slices.Contains(l.Namespaces, dnsNamespace) {
		for _, name := range dnsServices {
			var svc corev1.Service
			err := c.Get(ctx, client.ObjectKey{Namespace: dnsNamespace, Name: name}, &svc)
			if client.IgnoreNotFound(err) != nil {
				return nil, fmt.Errorf("reading the DNS Service %s/%s: %w", dnsNamespace, name, err)
			}
			if err == nil {
				svc.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Service"))
				out = append(out, &svc)
			}
		}
	}
	return out, nil
}

// list reads one kind, within the namespaces asked for.
func (l *Live) list(ctx context.Context, c client.Client, list client.ObjectList) ([]client.Object, error) {
	_, namespaces := list.(*corev1.NamespaceList)
	scopes := []string{""}
	if len(l.Namespaces) > 0 && !namespaces {
		scopes = l.Namespaces
	}
	var out []client.Object
	for _, ns := range scopes {
		fresh := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, fresh, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing %T in namespace %q: %w", list, ns, err)
		}
		items, err := meta.ExtractList(fresh)
		if err != nil {
			return nil, fmt.Errorf("reading %T: %w", list, err)
		}
		slices.SortFunc(items, func(a, b runtime.Object) int {
			ma, mb := a.(client.Object), b.(client.Object)
			return cmp.Or(cmp.Compare(ma.GetNamespace(), mb.GetNamespace()), cmp.Compare(ma.GetName(), mb.GetName()))
		})
		for _, item := range items {
			o := item.(client.Object)
			if namespaces && len(l.Namespaces) > 0 && !slices.Contains(l.Namespaces, o.GetName()) {
				continue
			}
			gvk, err := gvkOf(o)
			if err != nil {
				return nil, err
			}
			o.GetObjectKind().SetGroupVersionKind(gvk)
			out = append(out, o)
		}
	}
	return out, nil
}

// neverRead are kinds Live does not read even as the owner of a pod: they hold
// credentials and configuration, and own no workload.
var neverRead = map[schema.GroupKind]bool{{Kind: "Secret"}: true, {Kind: "ConfigMap"}: true}

// readOwners reads, as metadata only, the owners of objs (and theirs) of kinds liveLists
// does not list, such as the custom resources of a rollout controller: a pod's identity
// is the root of its owners of every kind the operator may list. An owner of a kind
// that cannot be read (not served, forbidden) or that no longer exists ends the walk, as
// in the operator; that is logged.
func readOwners(ctx context.Context, c client.Client, objs []client.Object) ([]client.Object, error) {
	listed := map[schema.GroupKind]bool{}
	for _, list := range liveLists() {
		gvk, err := gvkOf(list)
		if err != nil {
			return nil, err
		}
		listed[schema.GroupKind{Group: gvk.Group, Kind: strings.TrimSuffix(gvk.Kind, "List")}] = true
	}
	log := logr.FromContextOrDiscard(ctx)
	seen := map[Key]bool{}
	var out []client.Object
	queue := slices.Clone(objs)
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, ref := range o.GetOwnerReferences() {
			gv, err := schema.ParseGroupVersion(ref.APIVersion)
			if err != nil {
				log.Info("skipping an owner reference with a malformed apiVersion", "object", KeyOf(o).String(), "apiVersion", ref.APIVersion)
				continue
			}
			gvk := gv.WithKind(ref.Kind)
			key := Key{GroupKind: gvk.GroupKind(), Namespace: o.GetNamespace(), Name: ref.Name}
			if listed[key.GroupKind] || neverRead[key.GroupKind] || seen[key] {
				continue
			}
			seen[key] = true
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(gvk)
			err = c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, m)
			if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || meta.IsNoMatchError(err) {
				log.Info("cannot read an owner; the walk from its objects stops there", "owner", key.String(), "error", err.Error())
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading the owner %s: %w", key, err)
			}
			m.SetGroupVersionKind(gvk)
			out = append(out, m)
			queue = append(queue, m)
		}
	}
	return out, nil
}
