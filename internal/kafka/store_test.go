package kafka

import (
	"testing"

	"github.com/intentguard/intentguard/internal/kafkaacl"
)

// The owned record survives encoding exactly, DNs with escaped commas and quotes included,
// and an empty record decodes to an empty set.
func TestOwnedRecordRoundTrip(t *testing.T) {
	in := kafkaacl.NewSet(
		kafkaacl.ACL{Principal: `User:CN=b.a,O=acme\, inc`, Host: "*", Resource: kafkaacl.Topic, Pattern: kafkaacl.Prefixed, Name: "orders.", Operation: kafkaacl.Write, Permission: kafkaacl.Allow},
		kafkaacl.ACL{Principal: kafkaacl.Anonymous, Host: "*", Resource: kafkaacl.Topic, Pattern: kafkaacl.Literal, Name: "*", Operation: kafkaacl.All, Permission: kafkaacl.Deny},
		kafkaacl.ACL{Principal: `User:"quoted"`, Host: "10.0.0.1", Resource: kafkaacl.Cluster, Pattern: kafkaacl.Literal, Name: kafkaacl.ClusterName, Operation: kafkaacl.IdempotentWrite, Permission: kafkaacl.Allow},
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
