package kafka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/kafkaacl"
	"github.com/intentguard/intentguard/internal/netpol"
)

const (
	// ownedKey is the ConfigMap binaryData key of the gzipped owned set. Gzip keeps
	// thousands of ACLs (with long, repetitive principals) far below the 1 MiB limit.
	ownedKey = "owned.json.gz"
	// BrokerAnnotation names, on the ConfigMap, the KafkaServerConfig it belongs to.
	BrokerAnnotation = "intentguard.dev/kafka-server-config"
	// ClusterIDAnnotation records, on the ConfigMap, the ID of the Kafka cluster that
	// holds the owned ACLs.
	ClusterIDAnnotation = "intentguard.dev/kafka-cluster-id"
)

// OwnedConfigMapName is the name of the ConfigMap that records the ACLs this project
// created on the broker a KafkaServerConfig describes.
func OwnedConfigMapName(kscName string) string { return "kafka-acls." + kscName }

// store keeps the owned set of each broker in a ConfigMap next to its KafkaServerConfig,
// so an operator restart knows which ACLs it may delete. Reads go to the API server (not
// the cache: ConfigMaps are not cached, and only this one is ever read); the last written
// set is remembered so that a reconcile without change reads and writes nothing.
type store struct {
	client client.Client
	reader client.Reader
}

// storedSet is the owned set and the resource version it was read or written at.
type storedSet struct {
	acls      kafkaacl.Set
	clusterID string
	version   string
	exists    bool
}

func (s store) load(ctx context.Context, ksc *v2beta1.KafkaServerConfig) (storedSet, error) {
	var cm corev1.ConfigMap
	err := s.reader.Get(ctx, client.ObjectKey{Namespace: ksc.Namespace, Name: OwnedConfigMapName(ksc.Name)}, &cm)
	if apierrors.IsNotFound(err) {
		return storedSet{acls: kafkaacl.Set{}}, nil
	}
	if err != nil {
		return storedSet{}, fmt.Errorf("reading the owned ACLs of %s/%s: %w", ksc.Namespace, ksc.Name, err)
	}
	if cm.Annotations[BrokerAnnotation] != string(ksc.UID) {
		// A ConfigMap left by an earlier KafkaServerConfig of the same name (its owner
		// reference not yet collected) says nothing about what this one created.
		return storedSet{acls: kafkaacl.Set{}, version: cm.ResourceVersion, exists: true}, nil
	}
	acls, err := decode(cm.BinaryData[ownedKey])
	if err != nil {
		return storedSet{}, fmt.Errorf("decoding ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return storedSet{acls: acls, clusterID: cm.Annotations[ClusterIDAnnotation], version: cm.ResourceVersion, exists: true}, nil
}

// save writes the owned set; prev is what load or the last save returned.
func (s store) save(ctx context.Context, ksc *v2beta1.KafkaServerConfig, prev storedSet, acls kafkaacl.Set, clusterID string) (storedSet, error) {
	data, err := encode(acls)
	if err != nil {
		return prev, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ksc.Namespace,
			Name:        OwnedConfigMapName(ksc.Name),
			Labels:      map[string]string{netpol.ManagedByLabel: netpol.ManagedByValue},
			Annotations: map[string]string{BrokerAnnotation: string(ksc.UID), ClusterIDAnnotation: clusterID},
			// Garbage collection removes the record when its KafkaServerConfig is gone.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v2beta1.GroupVersion.String(), Kind: "KafkaServerConfig", Name: ksc.Name, UID: ksc.UID,
				BlockOwnerDeletion: ptr.To(false),
			}},
		},
		BinaryData: map[string][]byte{ownedKey: data},
	}
	if prev.exists {
		cm.ResourceVersion = prev.version
		err = s.client.Update(ctx, cm)
	} else {
		err = s.client.Create(ctx, cm)
	}
	if err != nil {
		return prev, fmt.Errorf("recording %d owned ACLs in ConfigMap %s/%s: %w", len(acls), cm.Namespace, cm.Name, err)
	}
	return storedSet{acls: acls, clusterID: clusterID, version: cm.ResourceVersion, exists: true}, nil
}

func (s store) remove(ctx context.Context, ksc *v2beta1.KafkaServerConfig) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ksc.Namespace, Name: OwnedConfigMapName(ksc.Name)}}
	if err := s.client.Delete(ctx, cm); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

// wireACL is the stored form of an ACL: a fixed-order array, compact and stable.
type wireACL [7]string

func encode(acls kafkaacl.Set) ([]byte, error) {
	rows := make([]wireACL, 0, len(acls))
	for _, a := range acls.Sorted() {
		rows = append(rows, wireACL{a.Principal, a.Host, string(a.Resource), string(a.Pattern), a.Name, string(a.Operation), string(a.Permission)})
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("encoding owned ACLs: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("compressing owned ACLs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing owned ACLs: %w", err)
	}
	return buf.Bytes(), nil
}

func decode(data []byte) (kafkaacl.Set, error) {
	out := kafkaacl.Set{}
	if len(data) == 0 {
		return out, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var rows []wireACL
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out.Add(kafkaacl.ACL{Principal: r[0], Host: r[1], Resource: kafkaacl.ResourceType(r[2]), Pattern: kafkaacl.Pattern(r[3]), Name: r[4], Operation: kafkaacl.Operation(r[5]), Permission: kafkaacl.Permission(r[6])})
	}
	return out, nil
}
