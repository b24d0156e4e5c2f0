package analysis

import (
	"cmp"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Change is the semantic difference between two states: the accesses removed and added
// per enforcement point, and the objects the operator would write to go from one to the
// other.
type Change struct {
	// Removed and Added are tuples, sorted by point then key.
	Removed []Tuple `json:"removed"`
	Added   []Tuple `json:"added"`
	// Policies are the NetworkPolicy writes.
	Policies []ObjectChange `json:"networkPolicies"`
	// ACLs are the Kafka ACL writes, per KafkaServerConfig.
	ACLs []ACLChange `json:"acls"`
	// AuthorizationPolicies are the Istio AuthorizationPolicy writes (with --istio).
	AuthorizationPolicies []ObjectChange `json:"authorizationPolicies,omitempty"`
}

// Actions on objects.
const (
	Create = "create"
	Update = "update"
	Delete = "delete"
)

// ObjectChange is one object the operator would create, update or delete.
type ObjectChange struct {
	Action    string `json:"action"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ACLChange is one ACL the operator would create or delete on a broker.
type ACLChange struct {
	Action string `json:"action"`
	// Config is the KafkaServerConfig (namespace/name).
	Config string  `json:"kafkaServerConfig"`
	ACL    acl.ACL `json:"acl"`
}

// Empty reports whether nothing changes.
func (c Change) Empty() bool {
	return len(c.Removed)+len(c.Added)+len(c.Policies)+len(c.ACLs)+len(c.AuthorizationPolicies) == 0
}

// Diff returns what changes from base to next.
func Diff(base, next *Result) Change {
	c := Change{Removed: []Tuple{}, Added: []Tuple{}, Policies: []ObjectChange{}, ACLs: []ACLChange{}}
	c.Removed = minus(base.Tuples, next.Tuples)
	c.Added = minus(next.Tuples, base.Tuples)
	c.Policies = objectChanges(base.Policies, next.Policies, compile.UpToDate)
	c.AuthorizationPolicies = objectChanges(base.authorizationPolicies(), next.authorizationPolicies(), authz.UpToDate)
	c.ACLs = aclChanges(base.Brokers, next.Brokers)
	return c
}

// minus returns the tuples of a whose access b does not grant.
func minus(a, b []Tuple) []Tuple {
	keys := map[string]bool{}
	for _, t := range b {
		keys[t.Key()] = true
	}
	out := []Tuple{}
	for _, t := range a {
		if !keys[t.Key()] {
			out = append(out, t)
		}
	}
	return out
}

// objectChanges returns the writes that turn the objects base into next; upToDate says
// whether an object of next needs no write over the one of its name in base.
func objectChanges[T client.Object](base, next []T, upToDate func(desired, existing T) bool) []ObjectChange {
	key := func(np T) string { return np.GetNamespace() + "/" + np.GetName() }
	old := map[string]T{}
	for _, np := range base {
		old[key(np)] = np
	}
	out := []ObjectChange{}
	seen := map[string]bool{}
	for _, np := range next {
		seen[key(np)] = true
		prev, ok := old[key(np)]
		switch {
		case !ok:
			out = append(out, ObjectChange{Create, np.GetNamespace(), np.GetName()})
		case !upToDate(np, prev):
			out = append(out, ObjectChange{Update, np.GetNamespace(), np.GetName()})
		}
	}
	for _, np := range base {
		if !seen[key(np)] {
			out = append(out, ObjectChange{Delete, np.GetNamespace(), np.GetName()})
		}
	}
	slices.SortFunc(out, func(a, b ObjectChange) int {
		return cmp.Or(cmp.Compare(actionOrder(a.Action), actionOrder(b.Action)), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// actionOrder puts deletions first, as removals are listed first.
func actionOrder(a string) int {
	return slices.Index([]string{Delete, Update, Create}, a)
}

func aclChanges(base, next []Broker) []ACLChange {
	sets := func(bs []Broker) map[string]acl.Set {
		out := map[string]acl.Set{}
		for _, b := range bs {
			out[b.Config] = acl.NewSet(b.ACLs...)
		}
		return out
	}
	old, cur := sets(base), sets(next)
	out := []ACLChange{}
	for config, set := range old {
		for _, a := range set.Sorted() {
			if !cur[config].Has(a) {
				out = append(out, ACLChange{Delete, config, a})
			}
		}
	}
	for config, set := range cur {
		for _, a := range set.Sorted() {
			if !old[config].Has(a) {
				out = append(out, ACLChange{Create, config, a})
			}
		}
	}
	slices.SortFunc(out, func(a, b ACLChange) int {
		return cmp.Or(cmp.Compare(actionOrder(a.Action), actionOrder(b.Action)), cmp.Compare(a.Config, b.Config), acl.Compare(a.ACL, b.ACL))
	})
	return out
}
