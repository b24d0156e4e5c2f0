package install

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/kafka"
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
			as, err := client.New(cfg, client.Options{Scheme: cluster.Scheme()})
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
