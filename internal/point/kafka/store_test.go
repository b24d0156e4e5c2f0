package kafka

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
)

// The owned record survives encoding exactly, DNs with escaped commas and quotes included,
// and an empty record decodes to an empty set.
func TestOwnedRecordRoundTrip(t *testing.T) {
	in := acl.NewSet(
		acl.ACL{Principal: `User:CN=b.a,O=acme\, inc`, Host: "*", Resource: acl.Topic, Pattern: acl.Prefixed, Name: "orders.", Operation: acl.Write, Permission: acl.Allow},
		acl.ACL{Principal: acl.Anonymous, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: "*", Operation: acl.All, Permission: acl.Deny},
		acl.ACL{Principal: `User:"quoted"`, Host: "10.0.0.1", Resource: acl.Cluster, Pattern: acl.Literal, Name: acl.ClusterName, Operation: acl.IdempotentWrite, Permission: acl.Allow},
	)
	data, err := encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Equal(in) {
		t.Fatalf("round trip changed the set:\n%v\n%v", in.Sorted(), out.Sorted())
	}
	if empty, err := decode(nil); err != nil || len(empty) != 0 {
		t.Fatalf("empty record: %v, %v", empty, err)
	}
	if _, err := decode([]byte("not gzip")); err == nil {
		t.Fatal("a corrupt record must be an error, not an empty set (which would forget what is owned)")
	}
}

// Only a ConfigMap bearing the operator's label and the config's namespace/name and UID
// counts as its record; one missing any of them, or naming another config, is foreign.
func TestRecordOwnership(t *testing.T) {
	ksc := &v2beta1.KafkaServerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "kafka", UID: "u-1"}}
	mine := func(edit func(*corev1.ConfigMap)) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator},
			Annotations: map[string]string{BrokerAnnotation: "kafka/kafka", BrokerUIDAnnotation: "u-1"},
		}}
		edit(cm)
		return cm
	}
	cases := map[string]struct {
		cm   *corev1.ConfigMap
		want bool
	}{
		"the operator's":        {mine(func(*corev1.ConfigMap) {}), true},
		"no managed-by label":   {mine(func(c *corev1.ConfigMap) { delete(c.Labels, ownership.Label) }), false},
		"another config's UID":  {mine(func(c *corev1.ConfigMap) { c.Annotations[BrokerUIDAnnotation] = "u-2" }), false},
		"a same-named config":   {mine(func(c *corev1.ConfigMap) { c.Annotations[BrokerAnnotation] = "tenant/kafka" }), false},
		"an earlier format":     {mine(func(c *corev1.ConfigMap) { c.Annotations = map[string]string{BrokerAnnotation: "u-1"} }), false},
		"no annotations at all": {mine(func(c *corev1.ConfigMap) { c.Annotations = nil }), false},
	}
	for name, c := range cases {
		if got := ours(c.cm, ksc); got != c.want {
			t.Errorf("%s: ours = %v, want %v", name, got, c.want)
		}
	}
}
