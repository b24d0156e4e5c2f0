// Package v2alpha1 holds the k8s.otterize.com/v2alpha1 API: ClientIntents and ProtectedService
// in the v2beta1 shape, field for field. The API server stores them as v2beta1.
// +kubebuilder:object:generate=true
// +groupName=k8s.otterize.com
package v2alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "k8s.otterize.com", Version: "v2alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
