package informer

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// allNamespacesKey is the prefix under which controller-runtime's cache looks up the
// value of a field index queried across every namespace (client.MatchingFields without
// client.InNamespace), and "field:" the prefix of the index's name. TestClusterWideIndexer
// checks that the cache still reads them so.
const (
	allNamespacesKey = "__all_namespaces/"
	fieldIndexPrefix = "field:"
)

// ClusterWideIndexer is a client.FieldIndexer whose indexes answer only queries across
// every namespace. controller-runtime's own stores every value of a namespaced object
// twice, for a query in its namespace and for one across all; the operator's index values
// name their namespace already and are queried across all, so the first copy was never
// read: one set of object keys more per index value, for every server, client and policy.
type ClusterWideIndexer struct {
	// Cache is the cache whose informers get the indexes.
	Cache cache.Cache
}

var _ client.FieldIndexer = ClusterWideIndexer{}

// IndexField implements client.FieldIndexer; List finds objects by the index only
// without client.InNamespace.
func (x ClusterWideIndexer) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	inf, err := x.Cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the informer to index %s: %w", field, err)
	}
	return inf.AddIndexers(toolscache.Indexers{fieldIndexPrefix + field: func(o any) ([]string, error) {
		co, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("indexing %s: %T is not an object", field, o)
		}
		vals := extract(co)
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = allNamespacesKey + v
		}
		return out, nil
	}})
}
