package kafka

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// FinalizerRelease is what the operator runs, as the leader, when the Kafka point is off
// (--kafka-acls=false): it removes the point's finalizer from every KafkaServerConfig, so
// that none waits for a controller that no longer runs, and namespaces holding one can be
// deleted. The ACLs the configs caused stay on their brokers.
func FinalizerRelease(c client.Client, reader client.Reader) manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		n, err := ReleaseFinalizers(ctx, c, reader)
		logger := log.FromContext(ctx).WithName("kafka")
		if err != nil {
			// Not fatal: the webhooks and NetworkPolicies must keep running; a restart
			// tries again.
			logger.Error(err, "releasing the finalizers of KafkaServerConfigs", "released", n)
		} else if n > 0 {
			logger.Info("Kafka ACLs are off: released the finalizers of KafkaServerConfigs; their ACLs stay on the brokers", "released", n)
		}
		return nil
	})
}

// ReleaseFinalizers removes Finalizer from every KafkaServerConfig that has it, and
// returns how many it released. It lists through reader (the API server), not a cache.
func ReleaseFinalizers(ctx context.Context, c client.Client, reader client.Reader) (int, error) {
	var list v2beta1.KafkaServerConfigList
	if err := reader.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("listing KafkaServerConfigs: %w", err)
	}
	released := 0
	for i := range list.Items {
		if !controllerutil.ContainsFinalizer(&list.Items[i], Finalizer) {
			continue
		}
		key := client.ObjectKeyFromObject(&list.Items[i])
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var ksc v2beta1.KafkaServerConfig
			if err := reader.Get(ctx, key, &ksc); err != nil {
				return err
			}
			if !controllerutil.RemoveFinalizer(&ksc, Finalizer) {
				return nil
			}
			return c.Update(ctx, &ksc)
		})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return released, fmt.Errorf("removing the finalizer of KafkaServerConfig %s: %w", key, err)
		}
		released++
	}
	return released, nil
}
