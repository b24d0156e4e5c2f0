package input

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
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
// them, then by namespace and name), each with its apiVersion and kind set. A kind whose
// CRD the cluster does not have is skipped, and logged.
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
