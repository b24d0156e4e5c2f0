package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProtectedServiceSpec names a server to protect in shadow mode.
type ProtectedServiceSpec struct {
	// Name is the server's service identity, in the ProtectedService's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Kind restricts the protection to workloads of this kind.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Z][A-Za-z0-9]*)?$`
	Kind string `json:"kind,omitempty"`
}

// ProtectedServiceStatus reports whether the protection is in force.
type ProtectedServiceStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Policy is the NetworkPolicy that protects the server, once it is in place.
	// +optional
	Policy string `json:"policy,omitempty"`
	// Conditions holds Ready, and Reconciling or Stalled while they hold (kstatus).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ProtectedService turns on default-deny plus declared intents for one server, also in shadow mode.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.name`
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.status.policy`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProtectedService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ProtectedServiceSpec   `json:"spec"`
	Status ProtectedServiceStatus `json:"status,omitempty"`
}

// ProtectedServiceList is a list of ProtectedService.
// +kubebuilder:object:root=true
type ProtectedServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProtectedService `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ProtectedService{}, &ProtectedServiceList{})
}
