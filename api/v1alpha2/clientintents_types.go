package v1alpha2

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Service names the client workload.
type Service struct {
	// Name is the workload's service identity.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// IntentType is the kind of call: http, kafka, or empty for a plain call.
// +kubebuilder:validation:Enum=http;kafka
type IntentType string

const (
	// IntentTypeHTTP is a call with HTTP resources.
	IntentTypeHTTP IntentType = "http"
	// IntentTypeKafka is a call to Kafka topics.
	IntentTypeKafka IntentType = "kafka"
)

// Intent is one call: to a workload "name[.namespace]", to a Kubernetes Service
// "svc:name[.namespace]", or to Kafka topics. Fields it does not know are kept, so that
// an object written upstream reads back unchanged.
// +kubebuilder:pruning:PreserveUnknownFields
// +kubebuilder:validation:XValidation:rule="!self.name.startsWith('svc:') || !has(self.type) || self.type != 'kafka'",message="a kafka call names the broker workload, not a Service (svc:)"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || size(self.resources) == 0 || (has(self.type) && self.type == 'http')",message="resources need type http"
// +kubebuilder:validation:XValidation:rule="!has(self.topics) || size(self.topics) == 0 || (has(self.type) && self.type == 'kafka')",message="topics need type kafka"
type Intent struct {
	// Name is "name" (same namespace as the client) or "name.namespace", prefixed with
	// "svc:" for a Kubernetes Service.
	// +kubebuilder:validation:MaxLength=257
	// +kubebuilder:validation:Pattern=`^(svc:)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Name string `json:"name"`
	// Type is the kind of call; empty is a plain call.
	// +optional
	Type IntentType `json:"type,omitempty"`
	// Topics are the Kafka topics and operations of a kafka call.
	// +optional
	// +listType=atomic
	Topics []v2beta1.KafkaTopic `json:"topics,omitempty"`
	// HTTPResources are the paths and methods of an http call.
	// +optional
	// +listType=atomic
	HTTPResources []v2beta1.HTTPTarget `json:"resources,omitempty"`
	// Unsupported holds, by field name, the fields of the call this project does not know.
	Unsupported map[string]apiextensionsv1.JSON `json:"-"`
}

// IntentsSpec declares the workload and every call it makes.
type IntentsSpec struct {
	// Service is the client whose calls are declared.
	Service Service `json:"service"`
	// Calls are the calls the client makes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Calls []Intent `json:"calls,omitempty"`
}

// ClientIntents declares the calls one client workload makes (v1alpha2 shape).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=clientintents,singular=clientintents,shortName=intents
// +kubebuilder:printcolumn:name="Workload",type=string,JSONPath=`.spec.service.name`
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.status.targetCount`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.status.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClientIntents struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   IntentsSpec                 `json:"spec"`
	Status v2beta1.ClientIntentsStatus `json:"status,omitempty"`
}

// ClientIntentsList is a list of ClientIntents.
// +kubebuilder:object:root=true
type ClientIntentsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClientIntents `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClientIntents{}, &ClientIntentsList{})
}
