package kafka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
)

const (
	// ownedKey is the ConfigMap binaryData key of the gzipped owned set. Gzip keeps
	// thousands of ACLs (with long, repetitive principals) far below the 1 MiB limit.
	ownedKey = "owned.json.gz"
	// BrokerAnnotation names, on the record, the KafkaServerConfig ("namespace/name") it
	// belongs to.
	BrokerAnnotation = "intentguard.dev/kafka-server-config"
	// BrokerUIDAnnotation holds, on the record, the UID of that KafkaServerConfig.
	BrokerUIDAnnotation = "intentguard.dev/kafka-server-config-uid"
	// ClusterIDAnnotation records, on the record, the ID of the Kafka cluster that
	// holds the owned ACLs.
	ClusterIDAnnotation = "intentguard.dev/kafka-cluster-id"
)

// OwnedConfigMapName is the name of the ConfigMap, in the operator's record namespace,
// that records the ACLs this project created on the broker a KafkaServerConfig describes.
// It is keyed by the config's UID: a config deleted and created again under the same
// name starts with an empty record, and no name a tenant picks reaches another's record.
func OwnedConfigMapName(uid types.UID) string { return "kafka-acls-" + string(uid) }

// store keeps the owned set of each broker in a ConfigMap of the operator's own namespace,
// which tenants cannot write: the record decides which ACLs the operator deletes, so it
// must not be forgeable by whoever may write in the broker's namespace. Reads go to the
// API server (ConfigMaps are not cached); the last written set is remembered so that a
// reconcile without change reads and writes nothing.
type store struct {
	client    client.Client
	reader    client.Reader
	namespace string
}

// storedSet is the owned set and the resource version it was read or written at.
type storedSet struct {
	acls      acl.Set
	clusterID string
	version   string
	uid       types.UID
	exists    bool
}

// foreignRecordError is a ConfigMap at the record's name that the operator did not write
// for this KafkaServerConfig: it is left alone, and nothing is done to the broker.
type foreignRecordError struct{ namespace, name string }

func (e foreignRecordError) Error() string {
	return fmt.Sprintf("ConfigMap %s/%s exists but was not written by the operator for this KafkaServerConfig; it is left alone and no ACL is changed until it is removed", e.namespace, e.name)
}

// ours reports whether the ConfigMap is the operator's record for the config.
func ours(cm *corev1.ConfigMap, ksc *v2beta1.KafkaServerConfig) bool {
	return cm.Labels[ownership.Label] == ownership.IntentsOperator &&
		cm.Annotations[BrokerUIDAnnotation] == string(ksc.UID) &&
		cm.Annotations[BrokerAnnotation] == ksc.Namespace+"/"+ksc.Name
}

func (s store) load(ctx context.Context, ksc *v2beta1.KafkaServerConfig) (storedSet, error) {
	var cm corev1.ConfigMap
	name := OwnedConfigMapName(ksc.UID)
	err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, &cm)
	if apierrors.IsNotFound(err) {
		return storedSet{acls: acl.Set{}}, nil
	}
	if err != nil {
		return storedSet{}, fmt.Errorf("reading the owned ACLs of %s/%s: %w", ksc.Namespace, ksc.Name, err)
	}
	if !ours(&cm, ksc) {
		return storedSet{}, foreignRecordError{namespace: s.namespace, name: name}
	}
	acls, err := decode(cm.BinaryData[ownedKey])
	if err != nil {
		return storedSet{}, fmt.Errorf("decoding ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return storedSet{acls: acls, clusterID: cm.Annotations[ClusterIDAnnotation], version: cm.ResourceVersion, uid: cm.UID, exists: true}, nil
}

// save writes the owned set; prev is what load or the last save returned. An update is
// conditional on prev's resource version, and a create fails on an existing object, so a
// record changed or made by anyone else is never overwritten.
func (s store) save(ctx context.Context, ksc *v2beta1.KafkaServerConfig, prev storedSet, acls acl.Set, clusterID string) (storedSet, error) {
	data, err := encode(acls)
	if err != nil {
		return prev, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.namespace,
			Name:      OwnedConfigMapName(ksc.UID),
			Labels:    map[string]string{ownership.Label: ownership.IntentsOperator},
			Annotations: map[string]string{
				BrokerAnnotation: ksc.Namespace + "/" + ksc.Name, BrokerUIDAnnotation: string(ksc.UID), ClusterIDAnnotation: clusterID,
			},
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
	return storedSet{acls: acls, clusterID: clusterID, version: cm.ResourceVersion, uid: cm.UID, exists: true}, nil
}

// remove deletes the record read as prev, and only that object: the UID precondition
// keeps a same-named object created since from being deleted.
func (s store) remove(ctx context.Context, ksc *v2beta1.KafkaServerConfig, prev *storedSet) error {
	if prev == nil || !prev.exists {
		loaded, err := s.load(ctx, ksc)
		if errors.As(err, &foreignRecordError{}) {
			return nil // not the operator's to delete
		}
		if err != nil {
			return err
		}
		prev = &loaded
	}
	if !prev.exists {
		return nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: OwnedConfigMapName(ksc.UID)}}
	if err := s.client.Delete(ctx, cm, client.Preconditions{UID: &prev.uid}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

// wireACL is the stored form of an ACL: a fixed-order array, compact and stable.
type wireACL [7]string

func encode(acls acl.Set) ([]byte, error) {
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

func decode(data []byte) (acl.Set, error) {
	out := acl.Set{}
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
		out.Add(acl.ACL{Principal: r[0], Host: r[1], Resource: acl.ResourceType(r[2]), Pattern: acl.Pattern(r[3]), Name: r[4], Operation: acl.Operation(r[5]), Permission: acl.Permission(r[6])})
	}
	return out, nil
}

// sweep deletes the records whose KafkaServerConfig is gone (deleted while the Kafka point
// was off, its finalizer released): they would only accumulate, as no new config has the
// UID they are keyed by. Only ConfigMaps that are the operator's records by name, label
// and annotations are considered, and each is deleted only at the UID it was read with.
func (s store) sweep(ctx context.Context, configs client.Reader) (int, error) {
	var list corev1.ConfigMapList
	if err := s.reader.List(ctx, &list, client.InNamespace(s.namespace), client.MatchingLabels{ownership.Label: ownership.IntentsOperator}); err != nil {
		return 0, fmt.Errorf("listing the Kafka ACL records in %s: %w", s.namespace, err)
	}
	swept := 0
	for i := range list.Items {
		cm := &list.Items[i]
		uid := cm.Annotations[BrokerUIDAnnotation]
		ns, name, ok := strings.Cut(cm.Annotations[BrokerAnnotation], "/")
		if uid == "" || !ok || cm.Name != OwnedConfigMapName(types.UID(uid)) {
			continue
		}
		var ksc v2beta1.KafkaServerConfig
		err := configs.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ksc)
		if err == nil && string(ksc.UID) == uid {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return swept, fmt.Errorf("reading KafkaServerConfig %s/%s: %w", ns, name, err)
		}
		if err := s.client.Delete(ctx, cm, client.Preconditions{UID: &cm.UID}); err != nil && !apierrors.IsNotFound(err) {
			return swept, fmt.Errorf("deleting the record %s/%s of a deleted KafkaServerConfig: %w", cm.Namespace, cm.Name, err)
		}
		swept++
	}
	return swept, nil
}
