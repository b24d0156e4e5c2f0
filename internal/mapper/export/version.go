package export

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// Versions are the served versions an export can be written in, the hub first.
var Versions = []string{"v2beta1", "v2alpha1", "v1beta1", "v1alpha3", "v1alpha2"}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := api.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("registering the API: %v", err))
	}
	return s
}()

// InVersion returns the ClientIntents in version (one of Versions), converted from the
// hub by the API's own conversion code, as the API server would serve it.
func InVersion(ci *v2beta1.ClientIntents, version string) (runtime.Object, error) {
	if !slices.Contains(Versions, version) {
		return nil, fmt.Errorf("API version %q: use one of %s", version, strings.Join(Versions, ", "))
	}
	gvk := v2beta1.GroupVersion.WithKind("ClientIntents")
	gvk.Version = version
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("ClientIntents %s: %w", version, err)
	}
	if version == v2beta1.GroupVersion.Version {
		obj = ci.DeepCopy()
	} else if err := obj.(conversion.Convertible).ConvertFrom(ci.DeepCopy()); err != nil {
		return nil, fmt.Errorf("converting ClientIntents %s/%s to %s: %w", ci.Namespace, ci.Name, version, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// Manifest renders an object as a YAML document to apply: without status and the fields
// the API server sets.
func Manifest(obj runtime.Object) ([]byte, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
	}
	unstructured.RemoveNestedField(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering %s as YAML: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
	}
	return out, nil
}

// FileName is the file a ClientIntents is written to in an output directory:
// namespace.name.yaml (a namespace holds no dot, so the name is never ambiguous).
func FileName(ci *v2beta1.ClientIntents) string {
	return ci.Namespace + "." + ci.Name + ".yaml"
}
