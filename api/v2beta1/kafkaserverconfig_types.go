package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KafkaTopicPattern says how a server-level topic rule's name is matched.
// +kubebuilder:validation:Enum=literal;prefix
type KafkaTopicPattern string

const (
	// KafkaTopicLiteral matches the topic of that exact name ("*" matches every topic).
	KafkaTopicLiteral KafkaTopicPattern = "literal"
	// KafkaTopicPrefix matches every topic whose name starts with the rule's name.
	KafkaTopicPrefix KafkaTopicPattern = "prefix"
)

// KafkaServerTopic is a broker-wide rule for some topics, applied whatever the intents say.
// +kubebuilder:validation:XValidation:rule="self.topic != '*' || !has(self.pattern) || self.pattern == 'literal'",message="topic * matches every topic and cannot be a prefix; use pattern literal"
// +kubebuilder:validation:XValidation:rule="(has(self.pattern) && self.pattern == 'prefix') || (self.topic != '.' && self.topic != '..')",message="Kafka refuses the topic names . and .."
type KafkaServerTopic struct {
	// Topic is the topic name, a prefix (with pattern prefix), or "*" for every topic.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^(\*|[a-zA-Z0-9._-]+)$`
	Topic string `json:"topic"`
	// Pattern is literal (default) or prefix.
	// +optional
	// +kubebuilder:default=literal
	Pattern KafkaTopicPattern `json:"pattern,omitempty"`
	// ClientIdentityRequired denies these topics to anonymous clients (User:ANONYMOUS).
	// +optional
	ClientIdentityRequired bool `json:"clientIdentityRequired,omitempty"`
	// IntentsRequired false allows every authenticated client all operations on these
	// topics (User:*); true (the default) leaves access to the declared intents.
	// +optional
	// +kubebuilder:default=true
	IntentsRequired *bool `json:"intentsRequired,omitempty"`
}

// KafkaTLS is how the operator reaches the broker over TLS. Files and a Secret may be
// combined; a file path wins over the same item in the Secret.
type KafkaTLS struct {
	// SecretName names a Secret in the KafkaServerConfig's namespace holding the operator's
	// client certificate, key and the CA that signed the broker's certificate (as the
	// credentials operator writes them). The operator reads it only if it carries the label
	// intentguard.dev/kafka-credentials: "true".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName,omitempty"`
	// CertKey is the Secret key of the PEM client certificate.
	// +optional
	// +kubebuilder:default=cert.pem
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	CertKey string `json:"certKey,omitempty"`
	// KeyKey is the Secret key of the PEM private key.
	// +optional
	// +kubebuilder:default=key.pem
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	KeyKey string `json:"keyKey,omitempty"`
	// CAKey is the Secret key of the PEM CA bundle.
	// +optional
	// +kubebuilder:default=ca.pem
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	CAKey string `json:"caKey,omitempty"`
	// CertFile is an absolute path, in the operator's file system, of the PEM client
	// certificate. It must lie in a directory listed by the operator's --kafka-tls-dirs.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/[^\x00]*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="the path must not contain .. (it must lie in a directory the operator's --kafka-tls-dirs allows)"
	CertFile string `json:"certFile,omitempty"`
	// KeyFile is an absolute path of the PEM private key, under --kafka-tls-dirs.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/[^\x00]*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="the path must not contain .. (it must lie in a directory the operator's --kafka-tls-dirs allows)"
	KeyFile string `json:"keyFile,omitempty"`
	// RootCAFile is an absolute path of the PEM CA bundle, under --kafka-tls-dirs.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/[^\x00]*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="the path must not contain .. (it must lie in a directory the operator's --kafka-tls-dirs allows)"
	RootCAFile string `json:"rootCAFile,omitempty"`
	// ServerName overrides the name checked in the broker's certificate (default: the
	// host of addr).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$`
	ServerName string `json:"serverName,omitempty"`
}

// KafkaSASLMechanism is a SASL mechanism the operator authenticates with.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type KafkaSASLMechanism string

// KafkaSASL is how the operator authenticates to the broker with SASL.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism KafkaSASLMechanism `json:"mechanism"`
	// SecretName names a Secret in the KafkaServerConfig's namespace with the user name
	// and password. The operator reads it only if it carries the label
	// intentguard.dev/kafka-credentials: "true".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName"`
	// UsernameKey is the Secret key of the user name.
	// +optional
	// +kubebuilder:default=username
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	UsernameKey string `json:"usernameKey,omitempty"`
	// PasswordKey is the Secret key of the password.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	PasswordKey string `json:"passwordKey,omitempty"`
}

// KafkaPrincipal says which ACL principal a client workload has on the broker.
type KafkaPrincipal struct {
	// Template renders a client's principal. $(dn) is the subject of the certificate the
	// credentials operator issues to the workload as the broker's default principal
	// builder renders it ("CN=<workload>.<namespace>,O=<organization>"); $(workload)
	// and $(namespace) are the client's. Examples: "User:$(dn)" (mTLS, the default),
	// "User:$(workload).$(namespace)" (SASL user names),
	// "User:spiffe://example.org/ns/$(namespace)/sa/$(workload)".
	// +optional
	// +kubebuilder:default="User:$(dn)"
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.startsWith('User:') && !self.contains('*')",message="the template must start with User: and must not contain * (which Kafka reads as every principal)"
	// +kubebuilder:validation:XValidation:rule="self.contains('$(dn)') || (self.split('$(workload)').size() == 2 && self.split('$(namespace)').size() == 2 && (self.indexOf('$(workload)') < self.indexOf('$(namespace)') ? self.substring(self.indexOf('$(workload)') + 11, self.indexOf('$(namespace)')) : self.substring(self.indexOf('$(namespace)') + 12, self.indexOf('$(workload)'))).matches('[^-a-z0-9]'))",message="the template must contain $(dn), or $(workload) and $(namespace) once each with a character that cannot occur in a namespace name (such as '.', '/', ':' or '@') between them: otherwise two clients can get the same principal (namespace a-b with workload c, and namespace a with workload b-c)"
	Template string `json:"template,omitempty"`
	// Organization is the O= of the client certificates, used by $(dn).
	// +optional
	// +kubebuilder:default=intentguard
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1f\x7f]*$`
	Organization string `json:"organization,omitempty"`
}

// KafkaConsumerGroup says which consumer groups a client that consumes a topic may use.
// +kubebuilder:validation:XValidation:rule="!has(self.name) || (!self.name.contains('$(workload)') && !self.name.contains('$(namespace)')) || (self.name.split('$(workload)').size() == 2 && self.name.split('$(namespace)').size() == 2 && (self.name.indexOf('$(workload)') < self.name.indexOf('$(namespace)') ? self.name.substring(self.name.indexOf('$(workload)') + 11, self.name.indexOf('$(namespace)')) : self.name.substring(self.name.indexOf('$(namespace)') + 12, self.name.indexOf('$(workload)'))).matches('[^-a-z0-9]') && (!has(self.pattern) || self.pattern != 'prefix' || (self.name.indexOf('$(workload)') < self.name.indexOf('$(namespace)') ? self.name.substring(self.name.indexOf('$(namespace)') + 12) : self.name.substring(self.name.indexOf('$(workload)') + 11)).matches('[^-a-z0-9]')))",message="a consumer group naming clients needs $(workload) and $(namespace) once each with a character that cannot occur in a namespace or workload name (such as '.', '_' or ':') between them, and, as a prefix, such a character after the last one (such as $(workload).$(namespace).): otherwise a client gets the groups of a client of another namespace"
type KafkaConsumerGroup struct {
	// Name is the group name, or its prefix with pattern prefix; $(workload) and
	// $(namespace) are the client's. "*" (literal) allows every group, as upstream did.
	// +optional
	// +kubebuilder:default="$(workload).$(namespace)"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^(\*|[^\x00-\x1f*]+)$`
	Name string `json:"name,omitempty"`
	// Pattern is literal (default) or prefix.
	// +optional
	// +kubebuilder:default=literal
	Pattern KafkaTopicPattern `json:"pattern,omitempty"`
}

// KafkaServerConfigSpec describes one Kafka broker (cluster) whose ACLs follow the intents.
type KafkaServerConfigSpec struct {
	// Workload is the broker workload; intents reach it as a kafka target named
	// "<name>.<namespace of this KafkaServerConfig>".
	Workload Workload `json:"workload"`
	// Addr is the bootstrap address, host:port: a DNS name, an IPv4 address or a
	// bracketed IPv6 address, and a port. The operator sends the credentials the config
	// names to this address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$`
	// +kubebuilder:validation:XValidation:rule="!self.matches(':[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",message="the port must be 1 to 65535"
	Addr string `json:"addr"`
	// NoAutoCreateIntentsForOperator is accepted for compatibility and has no effect.
	// +optional
	NoAutoCreateIntentsForOperator bool `json:"noAutoCreateIntentsForOperator,omitempty"`
	// TLS connects to the broker over TLS, with a client certificate when one is given.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`
	// SASL authenticates the operator with a user name and password.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`
	// Topics are broker-wide rules (anonymous deny, open topics).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Topics []KafkaServerTopic `json:"topics,omitempty"`
	// Principal says which principal a client workload has (default: its certificate DN).
	// +optional
	// +kubebuilder:default={}
	Principal KafkaPrincipal `json:"principal,omitempty"`
	// ConsumerGroup says which consumer groups a consuming client may use.
	// +optional
	// +kubebuilder:default={}
	ConsumerGroup KafkaConsumerGroup `json:"consumerGroup,omitempty"`
}

// KafkaServerConfigStatus says what the broker enforces.
type KafkaServerConfigStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Reconciling and Stalled (the vocabulary ClientIntents and
	// ProtectedService share), and Connected and ACLsInSync, which say why.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Enforced is true when the operator writes ACLs to this broker (false in shadow mode).
	// +optional
	Enforced bool `json:"enforced"`
	// DesiredACLs is the number of ACLs the intents and topic rules call for.
	// +optional
	DesiredACLs int32 `json:"desiredACLs"`
	// OwnedACLs is the number of ACLs on the broker that this operator created and
	// will remove when they are no longer wanted.
	// +optional
	OwnedACLs int32 `json:"ownedACLs"`
	// ForeignACLs is the number of other ACLs on the broker, which are never touched.
	// +optional
	ForeignACLs int32 `json:"foreignACLs"`
	// LastSyncTime is when the broker last reached the desired ACLs after a change; a
	// resync that finds it already in sync leaves it, so that it writes nothing.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// LastError is the last error talking to the broker, empty after a success.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// KafkaServerConfig describes a Kafka broker whose ACLs the operator keeps equal to the
// declared intents.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Workload",type=string,JSONPath=`.spec.workload.name`
// +kubebuilder:printcolumn:name="Addr",type=string,JSONPath=`.spec.addr`
// +kubebuilder:printcolumn:name="Owned",type=integer,JSONPath=`.status.ownedACLs`
// +kubebuilder:printcolumn:name="InSync",type=string,JSONPath=`.status.conditions[?(@.type=="ACLsInSync")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KafkaServerConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec   KafkaServerConfigSpec   `json:"spec"`
	Status KafkaServerConfigStatus `json:"status,omitempty"`
}

// KafkaServerConfigList is a list of KafkaServerConfig.
// +kubebuilder:object:root=true
type KafkaServerConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KafkaServerConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KafkaServerConfig{}, &KafkaServerConfigList{})
}
