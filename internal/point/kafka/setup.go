package kafka

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
)

const (
	// indexKafkaWorkload maps KafkaServerConfigs to their workload name.
	indexKafkaWorkload = "intentguard.kafka.workload"
	// indexKafkaTarget maps ClientIntents to the "namespace/name" of their kafka targets.
	indexKafkaTarget = "intentguard.kafka.target"
)

// Setup registers the Kafka ACL controller with the manager and returns its enforcement
// point, for the ClientIntents status.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*Point, error) {
	opts = opts.withDefaults()
	if opts.RecordNamespace == "" {
		return nil, fmt.Errorf("the Kafka enforcement point needs the namespace of its ownership records (the operator's own)")
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v2beta1.KafkaServerConfig{}, indexKafkaWorkload, func(o client.Object) []string {
		return []string{o.(*v2beta1.KafkaServerConfig).Spec.Workload.Name}
	}); err != nil {
		return nil, fmt.Errorf("indexing KafkaServerConfigs: %w", err)
	}
	if err := idx.IndexField(ctx, &v2beta1.ClientIntents{}, indexKafkaTarget, func(o client.Object) []string {
		return kafkaTargets(o.(*v2beta1.ClientIntents))
	}); err != nil {
		return nil, fmt.Errorf("indexing ClientIntents by kafka target: %w", err)
	}
	point := &Point{
		reader: mgr.GetClient(),
		states: map[types.NamespacedName]syncState{},
	}
	r := &Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Options:   opts,
		Recorder:  mgr.GetEventRecorder("intentguard"),
		store:     store{client: mgr.GetClient(), reader: mgr.GetAPIReader(), namespace: opts.RecordNamespace},
		point:     point,
	}
	reader := mgr.GetClient()
	brokersOf := func(ctx context.Context, namespace, workload string) []reconcile.Request {
		var list v2beta1.KafkaServerConfigList
		if err := reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexKafkaWorkload: workload}); err != nil {
			log.FromContext(ctx).Error(err, "mapping to KafkaServerConfigs", "namespace", namespace, "workload", workload)
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("kafka-acls").
		For(&v2beta1.KafkaServerConfig{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionChanged))).
		// An update maps both the old and the new object, so a removed kafka target
		// reconciles the broker it left.
		Watches(&v2beta1.ClientIntents{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var out []reconcile.Request
			for _, t := range kafkaTargets(o.(*v2beta1.ClientIntents)) {
				ns, name, _ := strings.Cut(t, "/")
				out = append(out, brokersOf(ctx, ns, name)...)
			}
			return out
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			ps := o.(*v2beta1.ProtectedService)
			return brokersOf(ctx, ps.Namespace, ps.Spec.Name)
		})).
		Complete(r)
	if err != nil {
		return nil, fmt.Errorf("setting up the Kafka ACL controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		// Not fatal: a leftover record is keyed by a UID no config has, and is only noise.
		if n, err := r.store.sweep(ctx, mgr.GetAPIReader()); err != nil {
			log.FromContext(ctx).Error(err, "removing the records of deleted KafkaServerConfigs", "removed", n)
		} else if n > 0 {
			log.FromContext(ctx).Info("removed the records of deleted KafkaServerConfigs", "removed", n)
		}
		return nil
	})); err != nil {
		return nil, fmt.Errorf("adding the Kafka record sweep: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.Close()
		return nil
	})); err != nil {
		return nil, fmt.Errorf("adding the Kafka client closer: %w", err)
	}
	return point, nil
}

// deletionChanged passes the update that marks a KafkaServerConfig for deletion (which
// custom resources do not always count as a generation change).
var deletionChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

func kafkaTargets(ci *v2beta1.ClientIntents) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range ci.Spec.Targets {
		if t.Kafka == nil {
			continue
		}
		name, ns := intent.SplitName(t.Kafka.Name, ci.Namespace)
		if k := ns + "/" + name; !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
