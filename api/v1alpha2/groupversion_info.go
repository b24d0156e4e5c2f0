// Package v1alpha2 holds the k8s.otterize.com/v1alpha2 API: the first "service and calls"
// shape of ClientIntents, from the original intents-operator docs, and ProtectedService.
// The API server stores every version as v2beta1; this package converts to and from it.
// +kubebuilder:object:generate=true
// +groupName=k8s.otterize.com
package v1alpha2

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "k8s.otterize.com", Version: "v1alpha2"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
