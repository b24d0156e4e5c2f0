// Package snapshot answers the compilers' questions about a cluster from a fixed set of
// objects (manifests read from files, or a cluster written out as manifests), the way the
// operator's informer cache answers them about a live cluster.
package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// ownerKey finds an object that can own pods.
type ownerKey struct {
	namespace string
	gk        schema.GroupKind
	name      string
}

// Snapshot indexes the objects of one cluster state.
type Snapshot struct {
	namespaces map[string]*corev1.Namespace
	services   map[nsName]*corev1.Service
	owners     map[ownerKey][]metav1.OwnerReference
	workloads  map[nsName][]workload
	pods       map[string][]facts.Pod // by namespace, sorted by name
	// specs are the pods' specs by namespace and name (a predicted pod's is its
	// template's): mesh membership and ServiceAccounts are read there.
	specs map[nsName]corev1.PodSpec
	// configMaps are the ConfigMaps of the inputs (a mesh configuration, say).
	configMaps map[nsName]*corev1.ConfigMap
	// running are the root owners of the pods the snapshot holds.
	running map[ownerKey]bool
	// predicted names the pods ("namespace/name") the snapshot does not hold but a
	// workload's template says the cluster runs.
	predicted map[string]bool
	// ports are the container ports of each pod ("namespace/name"), which name the
	// ports NetworkPolicies may refer to by name.
	ports map[string][]corev1.ContainerPort

	intents   []v2beta1.ClientIntents
	protected []v2beta1.ProtectedService
	kafka     []v2beta1.KafkaServerConfig
	policies  []networkingv1.NetworkPolicy
}

// nsName is a namespace and name.
type nsName struct{ namespace, name string }

// workload is a pod controller and whether another object owns it (then it is not the
// root of an identity).
type workload struct {
	facts.Workload
	owned bool
}

var (
	deploymentGK  = schema.GroupKind{Group: "apps", Kind: "Deployment"}
	statefulSetGK = schema.GroupKind{Group: "apps", Kind: "StatefulSet"}
	daemonSetGK   = schema.GroupKind{Group: "apps", Kind: "DaemonSet"}
	replicaSetGK  = schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}
	jobGK         = schema.GroupKind{Group: "batch", Kind: "Job"}
	cronJobGK     = schema.GroupKind{Group: "batch", Kind: "CronJob"}
)

// New indexes objects. A namespace that the objects use but do not hold is assumed to
// exist, with the label the API server puts on every namespace: manifests seldom carry
// their namespaces. A Deployment, StatefulSet or DaemonSet without pods in the objects
// gets one predicted pod from its template, as the cluster would run it. Objects of
// other kinds count as the owners of what they own.
func New(objects []client.Object) (*Snapshot, error) {
	s := &Snapshot{
		namespaces: map[string]*corev1.Namespace{},
		services:   map[nsName]*corev1.Service{},
		owners:     map[ownerKey][]metav1.OwnerReference{},
		workloads:  map[nsName][]workload{},
		pods:       map[string][]facts.Pod{},
		specs:      map[nsName]corev1.PodSpec{},
		configMaps: map[nsName]*corev1.ConfigMap{},
		predicted:  map[string]bool{},
		running:    map[ownerKey]bool{},
		ports:      map[string][]corev1.ContainerPort{},
	}
	var pods []*corev1.Pod
	var templates []templated
	used := map[string]bool{}
	for _, o := range objects {
		if ns := o.GetNamespace(); ns != "" {
			used[ns] = true
		}
		key := nsName{o.GetNamespace(), o.GetName()}
		switch o := o.(type) {
		case *corev1.Namespace:
			s.namespaces[o.Name] = withNameLabel(o)
		case *corev1.Service:
			s.services[key] = o
		case *corev1.Pod:
			pods = append(pods, o)
		case *corev1.ConfigMap:
			s.configMaps[key] = o
		case *appsv1.Deployment:
			s.addWorkload(o, deploymentGK, o.Spec.Selector)
			templates = append(templates, templated{o, deploymentGK, o.Spec.Template, o.Spec.Replicas})
		case *appsv1.StatefulSet:
			s.addWorkload(o, statefulSetGK, o.Spec.Selector)
			templates = append(templates, templated{o, statefulSetGK, o.Spec.Template, o.Spec.Replicas})
		case *appsv1.DaemonSet:
			s.addWorkload(o, daemonSetGK, o.Spec.Selector)
			templates = append(templates, templated{o, daemonSetGK, o.Spec.Template, nil})
		case *appsv1.ReplicaSet:
			s.addWorkload(o, replicaSetGK, nil)
		case *batchv1.Job:
			s.addWorkload(o, jobGK, nil)
		case *batchv1.CronJob:
			s.addWorkload(o, cronJobGK, nil)
		case *v2beta1.ClientIntents:
			s.intents = append(s.intents, *o)
		case *v2beta1.ProtectedService:
			s.protected = append(s.protected, *o)
		case *v2beta1.KafkaServerConfig:
			s.kafka = append(s.kafka, *o)
		case *networkingv1.NetworkPolicy:
			s.policies = append(s.policies, *o)
		default:
			// An object of any other kind (a custom controller, read as metadata) may
			// own pods: the identity rule follows it as the operator does.
			if gvk := o.GetObjectKind().GroupVersionKind(); gvk.Kind != "" {
				s.owners[ownerKey{o.GetNamespace(), gvk.GroupKind(), o.GetName()}] = o.GetOwnerReferences()
			}
		}
	}
	for ns := range used {
		if _, ok := s.namespaces[ns]; !ok {
			s.namespaces[ns] = withNameLabel(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}
	}
	ctx := context.Background()
	for _, p := range pods {
		if err := s.addPod(ctx, podMeta(p.ObjectMeta), containerPorts(p.Spec), false); err != nil {
			return nil, err
		}
		s.specs[nsName{p.Namespace, p.Name}] = p.Spec
	}
	for _, t := range templates {
		if err := s.predictPod(ctx, t); err != nil {
			return nil, err
		}
	}
	for ns := range s.pods {
		slices.SortFunc(s.pods[ns], func(a, b facts.Pod) int { return strings.Compare(a.Meta.Name, b.Meta.Name) })
	}
	sortObjects(s.intents)
	sortObjects(s.protected)
	sortObjects(s.kafka)
	sortObjects(s.policies)
	return s, nil
}

// withNameLabel returns the namespace with the label the API server sets on every
// namespace, which manifests leave out and policies select namespaces by.
func withNameLabel(ns *corev1.Namespace) *corev1.Namespace {
	if ns.Labels[corev1.LabelMetadataName] == ns.Name {
		return ns
	}
	ns = ns.DeepCopy()
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	return ns
}

// templated is a workload whose pods may be predicted from its template.
type templated struct {
	obj client.Object
	gk  schema.GroupKind
	pod corev1.PodTemplateSpec
	// replicas is the workload's replica count; nil means the default, one.
	replicas *int32
}

// predictPod adds a pod for a workload none of whose pods the snapshot holds (unless it
// is scaled to zero), named after it, with its template's labels and annotations, and
// owned by it directly: the identity is the same as through a ReplicaSet.
func (s *Snapshot) predictPod(ctx context.Context, t templated) error {
	if len(t.obj.GetOwnerReferences()) > 0 || len(t.pod.Labels) == 0 || t.replicas != nil && *t.replicas == 0 {
		return nil
	}
	ns := t.obj.GetNamespace()
	if s.running[ownerKey{ns, t.gk, t.obj.GetName()}] {
		return nil
	}
	yes := true
	meta := metav1.ObjectMeta{
		Namespace:   ns,
		Name:        t.obj.GetName() + "-predicted",
		Labels:      t.pod.Labels,
		Annotations: t.pod.Annotations,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: schema.GroupVersion{Group: t.gk.Group, Version: "v1"}.String(),
			Kind:       t.gk.Kind, Name: t.obj.GetName(), Controller: &yes,
		}},
	}
	s.specs[nsName{ns, meta.Name}] = t.pod.Spec
	return s.addPod(ctx, podMeta(meta), containerPorts(t.pod.Spec), true)
}

// containerPorts returns the ports every container of a pod declares.
func containerPorts(spec corev1.PodSpec) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, c := range spec.Containers {
		out = append(out, c.Ports...)
	}
	return out
}

func podMeta(m metav1.ObjectMeta) *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{ObjectMeta: *m.DeepCopy()}
	p.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	return p
}

func (s *Snapshot) addWorkload(o client.Object, gk schema.GroupKind, selector *metav1.LabelSelector) {
	s.owners[ownerKey{o.GetNamespace(), gk, o.GetName()}] = o.GetOwnerReferences()
	key := nsName{o.GetNamespace(), o.GetName()}
	w := workload{Workload: facts.Workload{Kind: gk.Kind, Name: o.GetName(), Selector: selector}, owned: len(o.GetOwnerReferences()) > 0}
	s.workloads[key] = append(s.workloads[key], w)
}

func (s *Snapshot) addPod(ctx context.Context, meta *metav1.PartialObjectMetadata, ports []corev1.ContainerPort, predicted bool) error {
	if !meta.DeletionTimestamp.IsZero() {
		return nil
	}
	id, err := identity.Resolve(ctx, meta, s.lookupOwners)
	if err != nil {
		return fmt.Errorf("resolving the identity of pod %s/%s: %w", meta.Namespace, meta.Name, err)
	}
	root, err := identity.Root(ctx, meta, s.lookupOwners)
	if err != nil {
		return fmt.Errorf("finding the owner of pod %s/%s: %w", meta.Namespace, meta.Name, err)
	}
	if root != nil {
		if gv, err := schema.ParseGroupVersion(root.APIVersion); err == nil {
			s.running[ownerKey{meta.Namespace, gv.WithKind(root.Kind).GroupKind(), root.Name}] = true
		}
	}
	s.pods[meta.Namespace] = append(s.pods[meta.Namespace], facts.Pod{Meta: meta, Identity: id})
	if len(ports) > 0 {
		s.ports[meta.Namespace+"/"+meta.Name] = ports
	}
	if predicted {
		s.predicted[meta.Namespace+"/"+meta.Name] = true
	}
	return nil
}

// lookupOwners is the identity rule's owner lookup over the snapshot: an owner the
// snapshot does not hold ends the walk, as an owner the operator cannot read does.
func (s *Snapshot) lookupOwners(_ context.Context, namespace string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
	owners, ok := s.owners[ownerKey{namespace, gvk.GroupKind(), name}]
	return owners, ok, nil
}

func sortObjects[T any, P interface {
	*T
	client.Object
}](items []T) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := P(&items[i]), P(&items[j])
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}

// Namespaces returns the snapshot's namespaces, sorted by name.
func (s *Snapshot) Namespaces() []*corev1.Namespace {
	out := make([]*corev1.Namespace, 0, len(s.namespaces))
	for _, ns := range s.namespaces {
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b *corev1.Namespace) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Namespace returns a namespace, or nil.
func (s *Snapshot) Namespace(name string) *corev1.Namespace { return s.namespaces[name] }

// NamespaceReady reports whether namespace exists and is not being deleted.
func (s *Snapshot) NamespaceReady(_ context.Context, namespace string) (bool, error) {
	ns, ok := s.namespaces[namespace]
	return ok && ns.DeletionTimestamp.IsZero(), nil
}

// Pod returns the pod namespace/name with its spec, and whether the snapshot holds it
// (or predicts it from a workload's template).
func (s *Snapshot) Pod(namespace, name string) (*corev1.Pod, bool) {
	for _, p := range s.pods[namespace] {
		if p.Meta.Name == name {
			return &corev1.Pod{ObjectMeta: p.Meta.ObjectMeta, Spec: s.specs[nsName{namespace, name}]}, true
		}
	}
	return nil, false
}

// ConfigMap returns the ConfigMap namespace/name of the inputs, or nil.
func (s *Snapshot) ConfigMap(namespace, name string) *corev1.ConfigMap {
	return s.configMaps[nsName{namespace, name}]
}

// Pods returns the pods of a namespace (predicted ones included), sorted by name.
func (s *Snapshot) Pods(namespace string) []facts.Pod { return s.pods[namespace] }

// Predicted reports whether a pod is predicted from its workload's template rather
// than held by the snapshot.
func (s *Snapshot) Predicted(pod *metav1.PartialObjectMetadata) bool {
	return s.predicted[pod.Namespace+"/"+pod.Name]
}

// ContainerPorts returns the ports a pod's containers declare (a predicted pod's, its
// workload template's).
func (s *Snapshot) ContainerPorts(pod *metav1.PartialObjectMetadata) []corev1.ContainerPort {
	return s.ports[pod.Namespace+"/"+pod.Name]
}

// AllPods returns every pod, by namespace then name.
func (s *Snapshot) AllPods() []facts.Pod {
	var out []facts.Pod
	for _, ns := range s.Namespaces() {
		out = append(out, s.pods[ns.Name]...)
	}
	return out
}

// Service implements facts.Facts.
func (s *Snapshot) Service(_ context.Context, namespace, name string) (*corev1.Service, error) {
	return s.services[nsName{namespace, name}], nil
}

// Services returns the Services of a namespace, sorted by name.
func (s *Snapshot) Services(namespace string) []*corev1.Service {
	var out []*corev1.Service
	for k, svc := range s.services {
		if k.namespace == namespace {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PodsMatching implements facts.Facts.
func (s *Snapshot) PodsMatching(_ context.Context, namespace string, selector map[string]string) ([]facts.Pod, error) {
	sel := labels.SelectorFromSet(selector)
	var out []facts.Pod
	for _, p := range s.pods[namespace] {
		if sel.Matches(labels.Set(p.Meta.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Workloads implements facts.Facts: the pod controllers named name in namespace that no
// other object owns, those that can be the root of an identity of that name.
func (s *Snapshot) Workloads(_ context.Context, namespace, name string) ([]facts.Workload, error) {
	var out []facts.Workload
	for _, w := range s.workloads[nsName{namespace, name}] {
		if !w.owned {
			out = append(out, w.Workload)
		}
	}
	return out, nil
}

// PodsOf implements facts.Facts.
func (s *Snapshot) PodsOf(_ context.Context, ref intent.Ref, workloads []facts.Workload) ([]facts.Pod, error) {
	var sels []labels.Selector
	for _, w := range workloads {
		if w.Selector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(w.Selector); err == nil && !sel.Empty() {
			sels = append(sels, sel)
		}
	}
	var out []facts.Pod
	for _, p := range s.pods[ref.Namespace] {
		match := p.Identity.Name == ref.Name
		for _, sel := range sels {
			match = match || sel.Matches(labels.Set(p.Meta.Labels))
		}
		if match {
			out = append(out, p)
		}
	}
	return out, nil
}

// IntentsTargeting implements facts.Facts.
func (s *Snapshot) IntentsTargeting(_ context.Context, server intent.Server) ([]v2beta1.ClientIntents, error) {
	var out []v2beta1.ClientIntents
	for _, ci := range s.ClientIntents() {
		if slices.Contains(intent.Servers(&ci), server) {
			out = append(out, ci)
		}
	}
	return out, nil
}

// ClientIntents returns every ClientIntents not being deleted.
func (s *Snapshot) ClientIntents() []v2beta1.ClientIntents { return live(s.intents) }

// ProtectedServices returns every ProtectedService not being deleted.
func (s *Snapshot) ProtectedServices() []v2beta1.ProtectedService { return live(s.protected) }

// ProtectedNamed lists the ProtectedServices naming name in namespace.
func (s *Snapshot) ProtectedNamed(_ context.Context, namespace, name string) ([]v2beta1.ProtectedService, error) {
	var out []v2beta1.ProtectedService
	for _, ps := range s.ProtectedServices() {
		if ps.Namespace == namespace && ps.Spec.Name == name {
			out = append(out, ps)
		}
	}
	return out, nil
}

// KafkaServerConfigs returns every KafkaServerConfig not being deleted.
func (s *Snapshot) KafkaServerConfigs() []v2beta1.KafkaServerConfig { return live(s.kafka) }

// NetworkPolicies returns the snapshot's NetworkPolicies.
func (s *Snapshot) NetworkPolicies() []networkingv1.NetworkPolicy { return s.policies }

func live[T any, P interface {
	*T
	client.Object
}](items []T) []T {
	var out []T
	for i := range items {
		if P(&items[i]).GetDeletionTimestamp().IsZero() {
			out = append(out, items[i])
		}
	}
	return out
}

var _ facts.Facts = (*Snapshot)(nil)

// WithProtected returns the snapshot with ps added, sharing everything else: the state
// a ProtectedService not yet applied would lead to, for the question "what would
// protecting this server block?".
func (s *Snapshot) WithProtected(ps v2beta1.ProtectedService) *Snapshot {
	c := *s
	c.protected = append(slices.Clone(s.protected), ps)
	sortObjects(c.protected)
	return &c
}
