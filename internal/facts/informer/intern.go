package informer

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// interner hands out one copy of each string it saw recently. The status of every
// ClientIntents repeats the same condition types, reasons and messages, and the
// per-target message of a server is the same for each of its clients; decoded, each is a
// copy of its own, thousands of times over. Memory stays bounded: strings are kept in two
// generations of at most limit each, the older dropped when the newer fills, so a string
// that stops recurring is forgotten.
type interner struct {
	limit int

	mu        sync.Mutex
	cur, prev map[string]string
}

func newInterner(limit int) *interner {
	return &interner{limit: limit, cur: map[string]string{}}
}

// of returns the copy of s the interner keeps, keeping s if it has none.
func (in *interner) of(s string) string {
	if s == "" {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.cur[s]; ok {
		return c
	}
	c, ok := in.prev[s]
	if !ok {
		c = s
	}
	in.cur[s] = c
	if len(in.cur) >= in.limit {
		in.prev, in.cur = in.cur, make(map[string]string, in.limit)
	}
	return c
}

// statusStrings is how many strings each generation of the status interner holds: a
// ClientIntents' status has about a dozen kinds of strings, and the per-target messages
// differ per server.
const statusStrings = 16384

// slimIntents returns the cache's transform of ClientIntents: no managed fields, and the
// strings of the status shared with the other ClientIntents that repeat them.
func slimIntents() func(any) (any, error) {
	in := newInterner(statusStrings)
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		ci, ok := obj.(*v2beta1.ClientIntents)
		if !ok {
			return strip(obj)
		}
		ci.ManagedFields = nil
		st := &ci.Status
		st.Enforcement = in.of(st.Enforcement)
		for i := range st.Targets {
			t := &st.Targets[i]
			t.Target, t.Point, t.State, t.Message = in.of(t.Target), in.of(t.Point), in.of(t.State), in.of(t.Message)
		}
		for i := range st.Conditions {
			c := &st.Conditions[i]
			c.Type, c.Status, c.Reason, c.Message = in.of(c.Type), metav1.ConditionStatus(in.of(string(c.Status))), in.of(c.Reason), in.of(c.Message)
		}
		return ci, nil
	}
}
