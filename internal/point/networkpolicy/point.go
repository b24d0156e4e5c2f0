package networkpolicy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// PointName is the NetworkPolicy enforcement point's name in status.
const PointName = "NetworkPolicy"

// Point holds what the policy reconciler recorded for each server at its last
// reconcile, and answers status from those records alone. A server is Enforced once its
// policy is written as planned and every pod it selects by the operator's labels (server
// and clients) was given them.
type Point struct {
	progress *progress
	notices  enforcement.Notices

	mu      sync.Mutex
	records map[intent.Server]*record
}

var _ enforcement.Point = (*Point)(nil)

// record is what one reconcile of a server ended with.
type record struct {
	// intents are the ClientIntents the reconcile planned for, with their generations: a
	// ClientIntents of another generation is not reflected yet.
	intents generations
	// protectors are the ProtectedServices covering the server, with their generations.
	protectors map[types.NamespacedName]int64
	// forIntents is the state of the server's targets in its ClientIntents.
	forIntents enforcement.TargetState
	// forProtected is the state of the server as its ProtectedServices see it.
	forProtected enforcement.TargetState
}

func newPoint() *Point {
	return &Point{progress: newProgress(), records: map[intent.Server]*record{}}
}

// Name implements enforcement.Point.
func (p *Point) Name() string { return PointName }

// Subscribe implements enforcement.Point.
func (p *Point) Subscribe() <-chan event.TypedGenericEvent[client.Object] {
	return p.notices.Subscribe()
}

// Outcomes implements enforcement.Point.
func (p *Point) Outcomes(_ context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	key := client.ObjectKeyFromObject(ci)
	var out []enforcement.TargetState
	for _, t := range ci.Spec.Targets {
		server, ok := intent.ServerOf(ci, t)
		if !ok {
			continue
		}
		st := p.recorded(server, func(r *record) (enforcement.TargetState, bool) {
			gen, ok := r.intents.of(key)
			return r.forIntents, ok && gen == ci.Generation
		})
		st.Target = intent.TargetName(t)
		out = append(out, st)
	}
	return out, nil
}

// Protection implements enforcement.Point: the state of the workload ps names.
func (p *Point) Protection(_ context.Context, ps *v2beta1.ProtectedService) ([]enforcement.TargetState, error) {
	server := intent.Protected(ps)
	key := client.ObjectKeyFromObject(ps)
	st := p.recorded(server, func(r *record) (enforcement.TargetState, bool) {
		gen, ok := r.protectors[key]
		return r.forProtected, ok && gen == ps.Generation
	})
	st.Target = server.String()
	return []enforcement.TargetState{st}, nil
}

// recorded returns what pick reads in the record of server when the record reflects what
// status sees (pick says so), else that the server is in hand. Records are replaced,
// never changed, so one can be read outside the lock.
func (p *Point) recorded(server intent.Server, pick func(*record) (enforcement.TargetState, bool)) enforcement.TargetState {
	p.mu.Lock()
	r := p.records[server]
	p.mu.Unlock()
	if r != nil {
		if st, fresh := pick(r); fresh {
			return st
		}
	}
	return p.inHand(server)
}

// inHand is the state of a server whose record does not reflect what status sees yet.
// While the reconciler works through its queue (a burst of intents: the server waits its
// turn), the wait counts from now, so a long burst writes no Pending status that its
// Ready replaces a moment later; once the queue stops moving, the wait counts from when
// the change was taken in hand.
func (p *Point) inHand(server intent.Server) enforcement.TargetState {
	since := p.progress.inHandSince(serverRequest(server))
	if p.progress.moving() {
		since = time.Now()
	}
	return enforcement.TargetState{
		State:   enforcement.Waiting,
		Message: fmt.Sprintf("waiting for NetworkPolicy %s/%s to be written", server.Namespace, compile.PolicyName(server)),
		InHand:  true,
		Since:   since,
	}
}

// record stores what a reconcile of server that carried out plan ended with, and
// notifies the ClientIntents and ProtectedServices whose outcome it changes.
func (p *Point) record(server intent.Server, plan compile.Plan, err error) {
	next := outcome(server, plan, err)
	if next != nil && next.forIntents.InHand {
		// A failed attempt: the wait that counts is that of the failures, as a conflict
		// after a long turn in a burst's queue is retried at once.
		next.forIntents.Since = p.progress.failingSince(serverRequest(server))
		next.forProtected.Since = next.forIntents.Since
	}
	p.mu.Lock()
	prev := p.records[server]
	if next == nil {
		delete(p.records, server)
	} else {
		p.records[server] = next
	}
	p.mu.Unlock()
	for _, obj := range changed(prev, next) {
		p.notices.Send(obj)
	}
}

// changed returns the ClientIntents and ProtectedServices whose outcome differs between
// two records of a server.
func changed(prev, next *record) []client.Object {
	if prev == nil {
		prev = &record{}
	}
	if next == nil {
		next = &record{}
	}
	sameIntents := sameState(prev.forIntents, next.forIntents)
	sameProtected := sameState(prev.forProtected, next.forProtected)
	return append(
		enforcement.Changed(prev.intents.asMap(), next.intents.asMap(), func(types.NamespacedName) bool { return sameIntents }, enforcement.IntentsNotice),
		enforcement.Changed(prev.protectors, next.protectors, func(types.NamespacedName) bool { return sameProtected }, enforcement.ProtectedNotice)...)
}

func sameState(a, b enforcement.TargetState) bool {
	a.Since, b.Since = time.Time{}, time.Time{}
	return a == b
}

// outcome is the record of a reconcile of server that planned plan and ended with err;
// nil when nothing refers to the server any more.
func outcome(server intent.Server, plan compile.Plan, err error) *record {
	if len(plan.Intents) == 0 && len(plan.Protectors) == 0 {
		return nil
	}
	// A record lives as long as its server; most servers have no ProtectedService, and
	// their record holds no map for them.
	r := &record{intents: make(generations, 0, len(plan.Intents))}
	for i := range plan.Intents {
		r.intents = append(r.intents, generation{key: client.ObjectKeyFromObject(&plan.Intents[i]), gen: plan.Intents[i].Generation})
	}
	slices.SortFunc(r.intents, func(a, b generation) int { return compareKeys(a.key, b.key) })
	if len(plan.Protectors) > 0 {
		r.protectors = make(map[types.NamespacedName]int64, len(plan.Protectors))
	}
	for i := range plan.Protectors {
		r.protectors[client.ObjectKeyFromObject(&plan.Protectors[i])] = plan.Protectors[i].Generation
	}
	ci := &r.forIntents
	ps := &r.forProtected
	notPlanned := enforcement.TargetState{State: enforcement.Waiting, Message: fmt.Sprintf("no NetworkPolicy is planned for %s", server)}
	switch {
	case plan.KindMeant != "":
		*ci = enforcement.TargetState{State: enforcement.Failed, Message: compile.KindMisspelled(server, plan.KindMeant)}
		*ps = *ci
		return r
	case plan.NamespaceMissing:
		*ci = enforcement.TargetState{State: enforcement.Waiting, Missing: true,
			Message: fmt.Sprintf("waiting for namespace %s: it does not exist yet; the NetworkPolicy is written as soon as it does", server.Namespace)}
		*ps = notPlanned
		return r
	case server.Service && plan.NoSelector:
		*ci = enforcement.TargetState{State: enforcement.Failed,
			Message: fmt.Sprintf("Service %s/%s has no pod selector, so no NetworkPolicy can select the pods behind it; target their workload instead (kubernetes: {name: ...})", server.Namespace, server.Name)}
		*ps = notPlanned
		return r
	case server.Service && !plan.Exists:
		*ci = enforcement.TargetState{State: enforcement.Waiting, Missing: true,
			Message: fmt.Sprintf("waiting for Service %s/%s: not found; its NetworkPolicy is written once it exists", server.Namespace, server.Name)}
		*ps = notPlanned
		return r
	case !plan.Enforced:
		*ci = enforcement.TargetState{State: enforcement.Shadow,
			Message: fmt.Sprintf("shadow mode: not enforced; a ProtectedService for %s, or enforcing namespace %s, would enforce it", server, server.Namespace)}
		*ps = notPlanned
		return r
	case plan.Policy == nil:
		*ci = enforcement.TargetState{State: enforcement.Failed, Message: "no NetworkPolicy can select the server's pods"}
		*ps = notPlanned
		return r
	}
	key := client.ObjectKeyFromObject(plan.Policy)
	var taken nameTakenError
	switch {
	case errors.As(err, &taken):
		*ci = enforcement.TargetState{State: enforcement.Failed, Message: taken.Error()}
		*ps = *ci
		return r
	case err != nil:
		*ci = enforcement.TargetState{State: enforcement.Waiting, InHand: true, Message: fmt.Sprintf("waiting for NetworkPolicy %s to be written", key)}
		*ps = *ci
		return r
	}
	*ci = enforcement.TargetState{State: enforcement.Enforced, Object: key.Name, Message: fmt.Sprintf("NetworkPolicy %s admits this client and no undeclared one", key)}
	*ps = enforcement.TargetState{State: enforcement.Enforced, Object: key.Name,
		Message: fmt.Sprintf("NetworkPolicy %s admits only the clients that declared calls to %s (%d ClientIntents)", key, server.Ref, len(plan.Intents))}
	if plan.ProtectedVia != "" {
		ci.Message += fmt.Sprintf(" (enforced in shadow mode: the Service fronts the protected %s)", plan.ProtectedVia)
	}
	if !plan.Exists {
		ci.Missing = true
		noPods := fmt.Sprintf("; no pods of %s exist yet, the policy selects them when they do", server.Ref)
		ci.Message += noPods
		ps.Message += noPods
	}
	return r
}

// generations are the ClientIntents a record covers with their generations, sorted by
// key: a record lives as long as its server, one per server, and a map for a few clients
// cost three times the slice.
type generations []generation

type generation struct {
	key types.NamespacedName
	gen int64
}

func compareKeys(a, b types.NamespacedName) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// of returns the generation recorded for key.
func (g generations) of(key types.NamespacedName) (int64, bool) {
	i, found := slices.BinarySearchFunc(g, key, func(e generation, k types.NamespacedName) int { return compareKeys(e.key, k) })
	if !found {
		return 0, false
	}
	return g[i].gen, true
}

// asMap returns the generations as enforcement.Changed takes them.
func (g generations) asMap() map[types.NamespacedName]int64 {
	m := make(map[types.NamespacedName]int64, len(g))
	for _, e := range g {
		m[e.key] = e.gen
	}
	return m
}
