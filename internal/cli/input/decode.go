package input

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	kjson "sigs.k8s.io/json"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/crdschema"
)

// Scheme returns the scheme objects are decoded with: Kubernetes' kinds and every
// served version of intentguard's.
var Scheme = sync.OnceValue(func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, api.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("building the scheme: %v", err))
		}
	}
	return s
})

// clusterScoped are the Kubernetes kinds that live in no namespace, among those a
// manifest directory commonly holds; other typed kinds get the default namespace.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}:        true,
	{Kind: "Node"}:             true,
	{Kind: "PersistentVolume"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                 true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                             true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:               true,
}

// Decode turns a document into the object the operator would read: an intentguard kind
// gets its CRD's defaults, loses the fields its schema does not declare, and is
// converted to v2beta1; a Kubernetes kind is typed; another kind stays unstructured. A
// namespaced object without a namespace gets namespace ("default" when empty). The
// result carries its apiVersion and kind. Errors name the document's source.
func Decode(d Document, namespace string) (client.Object, error) {
	if namespace == "" {
		namespace = "default"
	}
	u := d.Object.DeepCopy()
	gvk := u.GroupVersionKind()
	o, err := decode(u, gvk, namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %q: %w", d.Source, gvk.Kind, u.GetName(), err)
	}
	return o, nil
}

func decode(u *unstructured.Unstructured, gvk schema.GroupVersionKind, namespace string) (client.Object, error) {
	if gvk.Group == v2beta1.GroupVersion.Group {
		return decodeCustom(u, gvk, namespace)
	}
	if !Scheme().Recognizes(gvk) {
		return u, nil
	}
	if u.GetNamespace() == "" && !clusterScoped[gvk.GroupKind()] {
		u.SetNamespace(namespace)
	}
	o, err := Scheme().New(gvk)
	if err != nil {
		return nil, fmt.Errorf("creating a %s: %w", gvk, err)
	}
	// Not strict: a field of a newer Kubernetes than this binary knows is dropped, as the
	// analysis reads none of them.
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, o); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	o.GetObjectKind().SetGroupVersionKind(gvk)
	if np, ok := o.(*networkingv1.NetworkPolicy); ok {
		defaultNetworkPolicy(np)
	}
	return o.(client.Object), nil
}

// defaultProtocols makes TCP the protocol of ports that name none.
func defaultProtocols(ports []networkingv1.NetworkPolicyPort) {
	for i := range ports {
		if ports[i].Protocol == nil {
			tcp := corev1.ProtocolTCP
			ports[i].Protocol = &tcp
		}
	}
}

// defaultNetworkPolicy fills in what the API server defaults on a NetworkPolicy, so that a
// policy in a file is judged as the cluster would store it: without policyTypes it applies
// to ingress, and to egress too when it has egress rules; a port without a protocol is TCP.
func defaultNetworkPolicy(np *networkingv1.NetworkPolicy) {
	if len(np.Spec.PolicyTypes) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	for i := range np.Spec.Ingress {
		defaultProtocols(np.Spec.Ingress[i].Ports)
	}
	for i := range np.Spec.Egress {
		defaultProtocols(np.Spec.Egress[i].Ports)
	}
}

// decodeCustom reads an intentguard kind as the API server would store it and the
// operator read it.
func decodeCustom(u *unstructured.Unstructured, gvk schema.GroupVersionKind, namespace string) (client.Object, error) {
	s, ok, err := crdschema.For(gvk)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, Unserved(gvk)
	}
	if u.GetNamespace() == "" && s.Namespaced {
		u.SetNamespace(namespace)
	}
	s.Default(u.Object)
	s.Prune(u.Object)
	o, err := typed(u, gvk)
	if err != nil {
		return nil, err
	}
	return ToHub(o)
}

// typed decodes u into the Go type of gvk through JSON, so that the types' own JSON
// methods (which keep targets of unknown kinds) run as in the API server's conversion.
func typed(u *unstructured.Unstructured, gvk schema.GroupVersionKind) (runtime.Object, error) {
	o, err := Scheme().New(gvk)
	if err != nil {
		return nil, fmt.Errorf("creating a %s: %w", gvk, err)
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, o); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return o, nil
}

// ToHub converts an intentguard object of any served version to v2beta1 with the API's
// conversion code, and sets its apiVersion and kind.
func ToHub(o runtime.Object) (client.Object, error) {
	gvk, err := gvkOf(o)
	if err != nil {
		return nil, err
	}
	hubGVK := v2beta1.GroupVersion.WithKind(gvk.Kind)
	if _, isHub := o.(conversion.Hub); !isHub && gvk.Version != hubGVK.Version {
		spoke, ok := o.(conversion.Convertible)
		if !ok {
			return nil, fmt.Errorf("%s does not convert to %s", gvk, hubGVK.Version)
		}
		h, err := Scheme().New(hubGVK)
		if err != nil {
			return nil, fmt.Errorf("creating a %s: %w", hubGVK, err)
		}
		hub, ok := h.(conversion.Hub)
		if !ok {
			return nil, fmt.Errorf("%s is not the hub", hubGVK)
		}
		if err := spoke.ConvertTo(hub); err != nil {
			return nil, fmt.Errorf("converting %s to %s: %w", gvk.Version, hubGVK.Version, err)
		}
		o = hub
	}
	o.GetObjectKind().SetGroupVersionKind(hubGVK)
	return o.(client.Object), nil
}

// gvkOf returns the object's apiVersion and kind, from the scheme when it carries none.
func gvkOf(o runtime.Object) (schema.GroupVersionKind, error) {
	if gvk := o.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		return gvk, nil
	}
	gvks, _, err := Scheme().ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return schema.GroupVersionKind{}, fmt.Errorf("finding the kind of %T: %w", o, err)
	}
	return gvks[0], nil
}

// Unserved says which versions intentguard serves for a kind it does not serve in gvk.
func Unserved(gvk schema.GroupVersionKind) error {
	kinds, err := crdschema.Kinds()
	if err != nil {
		return err
	}
	versions := slices.Sorted(slices.Values(kinds[gvk.GroupKind()]))
	if len(versions) == 0 {
		return fmt.Errorf("intentguard has no kind %s", gvk.Kind)
	}
	return fmt.Errorf("apiVersion %s is not served for %s: use one of %s", gvk.GroupVersion(), gvk.Kind, strings.Join(versions, ", "))
}
