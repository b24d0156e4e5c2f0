package install

import (
	"context"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/point/kafka"
)

// heldKafkaConfig creates a KafkaServerConfig carrying the Kafka point's finalizer, as one
// the operator reconciled does, in a namespace of its own.
func heldKafkaConfig(t *testing.T, c client.Client, ns string) *v2beta1.KafkaServerConfig {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	ksc := &v2beta1.KafkaServerConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka", Finalizers: []string{kafka.Finalizer}},
		Spec:       v2beta1.KafkaServerConfigSpec{Workload: v2beta1.Workload{Name: "kafka"}, Addr: "kafka.kafka:9092"},
	}
	if err := c.Create(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	return ksc
}

// runKafkaHook stands in for the kubelet, which the local control plane lacks: when the
// chart's pre-delete Job appears, it does what the Job's container does
// (--release-kafka-finalizers) as the release's ServiceAccount, so with exactly the
// chart's RBAC, and reports the Job complete, as the Job controller would. It returns a
// channel that yields the hook's error, if any.
func runKafkaHook(t *testing.T, c client.Client, ns, rel string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			key := client.ObjectKey{Namespace: ns, Name: rel + "-intentguard-release-kafka-finalizers"}
			var job batchv1.Job
			if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				return c.Get(ctx, key, &job) == nil, nil
			}); err != nil {
				return fmt.Errorf("the pre-delete Job never appeared: %w", err)
			}
			cfg := rest.CopyConfig(local.Config)
			cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + job.Spec.Template.Spec.ServiceAccountName}
			as, err := client.New(cfg, client.Options{Scheme: informer.Scheme()})
			if err != nil {
				return err
			}
			if _, err := kafka.ReleaseFinalizers(context.Background(), as, as); err != nil {
				return fmt.Errorf("the hook as %s: %w", cfg.Impersonate.UserName, err)
			}
			now := metav1.Now()
			job.Status = batchv1.JobStatus{
				StartTime: &now, CompletionTime: &now, Succeeded: 1,
				Conditions: []batchv1.JobCondition{
					{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
					{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
				},
			}
			if err := c.Status().Update(context.Background(), &job); err != nil {
				return fmt.Errorf("completing the Job: %w", err)
			}
			return nil
		}()
	}()
	return done
}

// The chart's RBAC, as the API server's authorizer applies it: the intents operator may
// get Secrets only in the namespaces kafkaCredentialNamespaces lists, never list them,
// never read the credentials operator's CA key or another Secret of its own namespace
// (but its webhook certificate), and keeps its Kafka records (ConfigMaps) in its own
// namespace only.
func TestChartKafkaRBAC(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{namespace, "brokers", "tenant-other"} {
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	apply(t, render(t, "credentialsOperator.enabled=true", "kafkaCredentialNamespaces={brokers}"))
	cases := []struct {
		verb, resource, ns, name string
		allowed                  bool
	}{
		{"get", "secrets", "brokers", "kafka-admin", true},
		{"list", "secrets", "brokers", "", false},
		{"watch", "secrets", "brokers", "", false},
		{"get", "secrets", "tenant-other", "payments-sasl", false},
		{"get", "secrets", namespace, fullname + "-credentials-ca", false},
		{"get", "secrets", namespace, "anything", false},
		{"get", "secrets", namespace, fullname + "-webhook", true},
		{"get", "configmaps", namespace, "kafka-acls-x", true},
		{"update", "configmaps", namespace, "kafka-acls-x", true},
		{"list", "configmaps", namespace, "", true},
		{"list", "configmaps", "brokers", "", false},
		{"get", "configmaps", "brokers", "kafka-acls.kafka", false},
		{"update", "configmaps", "tenant-other", "kafka-acls.kafka", false},
		{"create", "configmaps", "brokers", "", false},
	}
	for _, c := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               serviceAccount,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Resource: c.resource, Namespace: c.ns, Name: c.name},
		}}
		if err := kube.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			t.Errorf("%s %s %s/%s: allowed %v, want %v (%s)", c.verb, c.resource, c.ns, c.name, sar.Status.Allowed, c.allowed, sar.Status.Reason)
		}
	}
}
