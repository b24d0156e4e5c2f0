package v1beta1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Service names the client workload by name and, optionally, kind.
type Service struct {
	// Name is the workload's service identity.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Kind restricts the identity to workloads of this kind (for example Deployment).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Z][A-Za-z0-9]*)?$`
	Kind string `json:"kind,omitempty"`
}

// IntentType is the kind of call: http, kafka, internet, or empty for a plain call.
// database, aws, gcp and azure exist upstream: refused in new files, and kept as written
// (not enforced) in objects that already have them.
// +kubebuilder:validation:Enum=http;kafka;database;aws;gcp;azure;internet
type IntentType string

// The call types with an equivalent in v2beta1.
const (
	// IntentTypeHTTP is a call with HTTP resources.
	IntentTypeHTTP IntentType = "http"
	// IntentTypeKafka is a call to Kafka topics.
	IntentTypeKafka IntentType = "kafka"
	// IntentTypeInternet is a call to addresses outside the cluster.
	IntentTypeInternet IntentType = "internet"
)

// Intent is one call: to a workload "name[.namespace]", to a Kubernetes Service
// "svc:name[.namespace]", to Kafka topics, or to the internet. Fields it does not know
// (the resources of database, aws, gcp and azure calls) are kept, so that an object
// written upstream reads back unchanged.
// +kubebuilder:pruning:PreserveUnknownFields
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type in ['http', 'kafka', 'internet']",message="calls of type database, aws, gcp and azure are not supported"
// +kubebuilder:validation:XValidation:rule="has(self.type) && self.type == 'internet' ? has(self.internet) && !has(self.name) : has(self.name) && !has(self.internet)",message="an internet call sets internet and no name; every other call sets name and no internet"
// +kubebuilder:validation:XValidation:rule="!has(self.name) || !self.name.startsWith('svc:') || !has(self.kind) || size(self.kind) == 0",message="a Service call (svc:) has no kind"
// +kubebuilder:validation:XValidation:rule="!has(self.name) || !self.name.startsWith('svc:') || !has(self.type) || self.type != 'kafka'",message="a kafka call names the broker workload, not a Service (svc:)"
// +kubebuilder:validation:XValidation:rule="!has(self.HTTPResources) || size(self.HTTPResources) == 0 || (has(self.type) && self.type == 'http')",message="HTTPResources need type http"
// +kubebuilder:validation:XValidation:rule="!has(self.kafkaTopics) || size(self.kafkaTopics) == 0 || (has(self.type) && self.type == 'kafka')",message="kafkaTopics need type kafka"
type Intent struct {
	// Name is "name" (same namespace as the client) or "name.namespace", prefixed with
	// "svc:" for a Kubernetes Service.
	// +optional
	// +kubebuilder:validation:MaxLength=257
	// +kubebuilder:validation:Pattern=`^(svc:)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Name string `json:"name,omitempty"`
	// Kind restricts the server to workloads of this kind.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Z][A-Za-z0-9]*)?$`
	Kind string `json:"kind,omitempty"`
	// Type is the kind of call; empty is a plain call.
	// +optional
	Type IntentType `json:"type,omitempty"`
	// Topics are the Kafka topics and operations of a kafka call.
	// +optional
	// +listType=atomic
	Topics []v2beta1.KafkaTopic `json:"kafkaTopics,omitempty"`
	// HTTPResources are the paths and methods of an http call.
	// +optional
	// +listType=atomic
	HTTPResources []v2beta1.HTTPTarget `json:"HTTPResources,omitempty"`
	// Internet is the destination of an internet call.
	// +optional
	Internet *v2beta1.InternetTarget `json:"internet,omitempty"`
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

// ClientIntents declares the calls one client workload makes (v1beta1 shape).
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
