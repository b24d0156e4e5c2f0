package v2beta1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload names the client (or server) workload by name and, optionally, kind.
type Workload struct {
	// Name is the workload's service identity: the name of the root owner of its pods
	// (Deployment, StatefulSet, CronJob, ...) or the value of the pod annotation
	// intents.otterize.com/workload-name.
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

// Target is one call the client makes. Exactly one of its fields is set. A target of a
// kind this project does not enforce (sql, aws, gcp, azure, or a call of an older
// version that has no equivalent here) is kept as written, unknown fields and all, and
// reported as not enforced; the validating webhook refuses new ones.
// +kubebuilder:pruning:PreserveUnknownFields
// +kubebuilder:validation:XValidation:rule="[has(self.kubernetes), has(self.service), has(self.kafka), has(self.internet)].filter(x, x).size() <= 1",message="a target must set exactly one of kubernetes, service, kafka or internet"
type Target struct {
	// Kubernetes is a call to a workload, by its service identity.
	// +optional
	Kubernetes *KubernetesTarget `json:"kubernetes,omitempty"`
	// Service is a call to the pods behind a Kubernetes Service.
	// +optional
	Service *ServiceTarget `json:"service,omitempty"`
	// Kafka is a call to topics of a Kafka broker workload.
	// +optional
	Kafka *KafkaTarget `json:"kafka,omitempty"`
	// Internet is a call to addresses outside the cluster.
	// +optional
	Internet *InternetTarget `json:"internet,omitempty"`
	// Unsupported holds, by field name, the fields of the target that this project does
	// not know. It is set only on a target of a kind it does not enforce.
	Unsupported map[string]apiextensionsv1.JSON `json:"-"`
}

// KubernetesTarget is a call to a workload, "name" in the client's namespace or "name.namespace".
type KubernetesTarget struct {
	// Name is "name" (same namespace as the client) or "name.namespace".
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Name string `json:"name"`
	// Kind restricts the server to workloads of this kind.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Z][A-Za-z0-9]*)?$`
	Kind string `json:"kind,omitempty"`
	// HTTP narrows the call to these paths and methods (enforced by L7 enforcement points).
	// +optional
	// +listType=atomic
	HTTP []HTTPTarget `json:"http,omitempty"`
}

// ServiceTarget is a call to a Kubernetes Service, "name" or "name.namespace".
type ServiceTarget struct {
	// Name is "name" (same namespace as the client) or "name.namespace".
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Name string `json:"name"`
	// HTTP narrows the call to these paths and methods (enforced by L7 enforcement points).
	// +optional
	// +listType=atomic
	HTTP []HTTPTarget `json:"http,omitempty"`
}

// HTTPMethod is an HTTP request method, one of those Istio's authorization policies match.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;OPTIONS;TRACE;PATCH;CONNECT
type HTTPMethod string

// HTTPTarget is a path and the methods allowed on it.
type HTTPTarget struct {
	// Path is the request path, or a prefix ending in "*". It starts with "/" and holds
	// visible ASCII characters only: spaces, control and other characters are
	// percent-encoded, as they are on the wire.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^/[!-~]*$`
	Path string `json:"path"`
	// Methods are the methods allowed; empty means all.
	// +optional
	// +listType=set
	Methods []HTTPMethod `json:"methods,omitempty"`
}

// KafkaOperation is an operation on a Kafka topic.
// +kubebuilder:validation:Enum=all;consume;produce;create;alter;delete;describe;ClusterAction;DescribeConfigs;AlterConfigs;IdempotentWrite
type KafkaOperation string

// KafkaTarget is a call to topics of a Kafka broker, "name" or "name.namespace".
type KafkaTarget struct {
	// Name is the Kafka broker workload, "name" or "name.namespace".
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Name string `json:"name"`
	// Topics are the topics and operations the client uses.
	// +optional
	// +listType=atomic
	Topics []KafkaTopic `json:"topics,omitempty"`
}

// KafkaTopic is a topic name (or pattern) and the operations on it.
type KafkaTopic struct {
	// Name is the topic name, a prefix of topic names followed by "*", or "*" for every
	// topic. Topic names are Kafka's: 1 to 249 letters, digits, '.', '_' or '-', and
	// neither "." nor "..".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=250
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]{0,249}[*]?$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="\".\" and \"..\" are not Kafka topic names"
	Name string `json:"name"`
	// Operations are the operations the client performs on the topic.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Operations []KafkaOperation `json:"operations"`
}

// InternetTarget is a call to addresses outside the cluster.
// +kubebuilder:validation:XValidation:rule="(has(self.domains) ? size(self.domains) : 0) + (has(self.ips) ? size(self.ips) : 0) > 0",message="an internet target needs at least one domain or ip"
type InternetTarget struct {
	// Domains are DNS names, optionally with a leading "*." wildcard.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^([*][.])?([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.]?$`
	Domains []string `json:"domains,omitempty"`
	// IPs are addresses or CIDR blocks.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isIP(self) || isCIDR(self)",message="not an IP address or CIDR block (like 192.0.2.1 or 192.0.2.0/24)"
	IPs []string `json:"ips,omitempty"`
	// Ports limits the call to these ports; empty means all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	Ports []int32 `json:"ports,omitempty"`
}

// ClientIntentsSpec declares the workload and every call it makes.
type ClientIntentsSpec struct {
	// Workload is the client whose calls are declared.
	Workload Workload `json:"workload"`
	// Targets are the calls the client makes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Targets []Target `json:"targets,omitempty"`
}

// ResolvedIPs records the addresses a domain name resolved to.
type ResolvedIPs struct {
	// DNS is the resolved name.
	DNS string `json:"dns"`
	// IPs are the addresses it resolved to.
	// +optional
	IPs []string `json:"ips,omitempty"`
}

// TargetStatus is what one enforcement point does for one target.
type TargetStatus struct {
	// Target names the target as the intents declare it ("service server", "kafka kafka.kafka").
	Target string `json:"target"`
	// Point is the enforcement point ("NetworkPolicy", "KafkaACL"); empty when none handles the target.
	// +optional
	Point string `json:"point,omitempty"`
	// State is Enforced, Shadow, Waiting, Failed or NotEnforced.
	State string `json:"state"`
	// Message says what is in place, or what is missing and what to do about it.
	// +optional
	Message string `json:"message,omitempty"`
}

// ClientIntentsStatus reports whether the intents are enforced.
type ClientIntentsStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// UpToDate is true when every enforcement point reflects the observed generation.
	// +optional
	UpToDate bool `json:"upToDate"`
	// TargetCount is the number of targets in the observed generation.
	// +optional
	TargetCount int32 `json:"targetCount,omitempty"`
	// Enforcement summarises how the targets are handled: Enforced, Shadow or Partial.
	// +optional
	Enforcement string `json:"enforcement,omitempty"`
	// Targets says, per target and enforcement point, exactly what is enforced.
	// +optional
	// +listType=atomic
	Targets []TargetStatus `json:"targets,omitempty"`
	// Conditions are Ready, Reconciling and Stalled (kstatus), TargetsResolved and Enforced.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ResolvedIPs records the addresses of internet targets' domains.
	// +optional
	ResolvedIPs []ResolvedIPs `json:"resolvedIPs,omitempty"`
}

// ClientIntents declares the calls one client workload makes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:path=clientintents,singular=clientintents,shortName=intents
// +kubebuilder:printcolumn:name="Workload",type=string,JSONPath=`.spec.workload.name`
// +kubebuilder:printcolumn:name="Targets",type=integer,JSONPath=`.status.targetCount`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.status.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClientIntents struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ClientIntentsSpec   `json:"spec"`
	Status ClientIntentsStatus `json:"status,omitempty"`
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
