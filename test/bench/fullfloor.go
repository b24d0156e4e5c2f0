package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/ownership"
)

// fullFloor is the least the API server must do for a bulk whose target includes status:
// the bulk's own ClientIntents creates, the final policies and pod labels, and one status
// write per ClientIntents, with no operator and no client-side limit.
type fullFloor struct {
	// Seconds is the median of the runs, each from the first ClientIntents create until
	// the last write.
	Seconds float64   `json:"seconds"`
	Runs    []float64 `json:"runs"`
	// InputSeconds is the median time the generator's ClientIntents creates alone took
	// within the same runs.
	InputSeconds float64   `json:"inputSeconds"`
	InputRuns    []float64 `json:"inputRuns"`
	// StatusesEqual counts the statuses read back after the first run equal to the
	// operator's in the bulk (all of them, or the bench fails).
	StatusesEqual int `json:"statusesEqualToBulk"`
	// Writes is what the last run cost the API server, by kind.
	Writes apiWrites `json:"writesByKind"`
}

// fullFloorPlan is what every run of the full floor writes: the bulk's ClientIntents as
// the generator creates them, each with the status the operator wrote for it in the bulk
// and the policies that status waits for, and the floor's policies and pod labels.
type fullFloorPlan struct {
	intents  []*v2beta1.ClientIntents
	statuses []v2beta1.ClientIntentsStatus
	// needs lists, per ClientIntents, the indexes in policies its status waits for.
	needs    [][]int
	policies []*networkingv1.NetworkPolicy
	labels   []podLabel
}

// newFullFloorPlan pairs each of the bulk's ClientIntents with the status the operator
// wrote for it (converged: the ClientIntents read once the operator was quiet) and with
// the indexes of the policies its calls need.
func newFullFloorPlan(intents []*v2beta1.ClientIntents, converged []v2beta1.ClientIntents, want map[client.ObjectKey]*networkingv1.NetworkPolicy, needs map[client.ObjectKey][]client.ObjectKey, labels []podLabel) (*fullFloorPlan, error) {
	p := &fullFloorPlan{labels: labels}
	index := map[client.ObjectKey]int{}
	for k, pol := range want {
		index[k] = len(p.policies)
		p.policies = append(p.policies, pol)
	}
	written := map[client.ObjectKey]v2beta1.ClientIntentsStatus{}
	for i := range converged {
		written[client.ObjectKeyFromObject(&converged[i])] = converged[i].Status
	}
	for _, ci := range intents {
		k := client.ObjectKeyFromObject(ci)
		st, ok := written[k]
		if !ok {
			return nil, fmt.Errorf("ClientIntents %s is not in the converged cluster", k)
		}
		var need []int
		for _, pk := range needs[k] {
			i, ok := index[pk]
			if !ok {
				return nil, fmt.Errorf("ClientIntents %s needs policy %s, which the floor does not write", k, pk)
			}
			need = append(need, i)
		}
		p.intents, p.statuses, p.needs = append(p.intents, ci), append(p.statuses, st), append(p.needs, need)
	}
	return p, nil
}

// fullFloorWrites are the four kinds of write of a full floor run, by index into the plan.
type fullFloorWrites struct {
	create, policy, label, status func(i int) error
}

// gate releases each ClientIntents's status once the ClientIntents exists and every
// policy it needs is written.
type gate struct {
	mu sync.Mutex
	// due counts, per ClientIntents, the writes still due before its status.
	due []int
	// waiting lists, per policy, the ClientIntents whose status waits for it.
	waiting [][]int
	release func(ci int)
}

func newGate(needs [][]int, policies int, release func(ci int)) *gate {
	g := &gate{due: make([]int, len(needs)), waiting: make([][]int, policies), release: release}
	for ci, need := range needs {
		seen := map[int]bool{}
		g.due[ci] = 1 // the ClientIntents itself
		for _, p := range need {
			if !seen[p] {
				seen[p] = true
				g.due[ci]++
				g.waiting[p] = append(g.waiting[p], ci)
			}
		}
	}
	return g
}

// done records one write ClientIntents ci waits for, and releases its status after the last.
func (g *gate) done(ci int) {
	g.mu.Lock()
	g.due[ci]--
	last := g.due[ci] == 0
	g.mu.Unlock()
	if last {
		g.release(ci)
	}
}

func (g *gate) created(ci int) { g.done(ci) }

func (g *gate) written(policy int) {
	for _, ci := range g.waiting[policy] {
		g.done(ci)
	}
}

// runFullFloor creates the ClientIntents on 16 writers, as the bulk's generator does,
// while 4 writers, as many as the operator's NetworkPolicy controller has workers, write
// the policies and pod labels, and 8, as many as its status controller has, write each
// status as the gate releases it. It returns the time until the last write and the time
// the creates alone took. A failed write still releases what waits for it, so that the
// run ends; the first error is returned.
func runFullFloor(needs [][]int, policies, labels int, w fullFloorWrites) (total, input time.Duration, err error) {
	var once sync.Once
	fail := func(e error) {
		if e != nil {
			once.Do(func() { err = e })
		}
	}
	jobs := make(chan func(), labels+policies)
	statuses := make(chan func(), len(needs))
	var pending sync.WaitGroup
	pending.Add(cap(jobs) + cap(statuses))
	g := newGate(needs, policies, func(ci int) { statuses <- func() { fail(w.status(ci)) } })
	for i := range labels {
		jobs <- func() { fail(w.label(i)) }
	}
	for i := range policies {
		jobs <- func() { fail(w.policy(i)); g.written(i) }
	}
	var writers sync.WaitGroup
	work := func(queue <-chan func(), n int) {
		for range n {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for job := range queue {
					job()
					pending.Done()
				}
			}()
		}
	}
	t0 := time.Now()
	work(jobs, 4)
	work(statuses, 8)
	fail(parallel(len(needs), 16, func(i int) error {
		defer g.created(i)
		return w.create(i)
	}))
	input = time.Since(t0)
	pending.Wait()
	total = time.Since(t0)
	close(jobs)
	close(statuses)
	writers.Wait()
	return total, input, err
}

// fullFloorRun is one run of the full floor.
type fullFloorRun struct {
	total, input time.Duration
	// equal counts the statuses read back equal to the bulk's, when they were checked.
	equal int
	// writes are the run's writes by kind, without those undoing them.
	writes apiWrites
}

// writeFullFloor runs the full floor once against the API server with the client c (no
// client-side limit), counts its writes with scrape, checks the statuses when check is
// set, and undoes every write.
func writeFullFloor(ctx context.Context, c client.Client, scrape func() (apiWrites, error), p *fullFloorPlan, check bool) (fullFloorRun, error) {
	var run fullFloorRun
	before, err := scrape()
	if err != nil {
		return run, err
	}
	intents := make([]*v2beta1.ClientIntents, len(p.intents))
	for i, ci := range p.intents {
		intents[i] = ci.DeepCopy()
	}
	policies := make([]*networkingv1.NetworkPolicy, len(p.policies))
	for i, pol := range p.policies {
		policies[i] = pol.DeepCopy()
	}
	run.total, run.input, err = runFullFloor(p.needs, len(policies), len(p.labels), fullFloorWrites{
		create: func(i int) error { return c.Create(ctx, intents[i]) },
		policy: func(i int) error { return c.Create(ctx, policies[i]) },
		label:  func(i int) error { return patchLabels(ctx, c, p.labels[i], false) },
		status: func(i int) error {
			// As the operator writes it: a merge patch of the status subresource, from
			// the object as it was created.
			ci := intents[i]
			patch := client.MergeFrom(ci.DeepCopy())
			ci.Status = *p.statuses[i].DeepCopy()
			return c.Status().Patch(ctx, ci, patch)
		},
	})
	if err != nil {
		return run, fmt.Errorf("full floor writes: %w", err)
	}
	after, err := scrape()
	if err != nil {
		return run, err
	}
	run.writes = after.minus(before)
	if check {
		if run.equal, err = sameStatuses(ctx, c, p); err != nil {
			return run, err
		}
	}
	if err := parallel(len(intents), 16, func(i int) error { return c.Delete(ctx, intents[i]) }); err != nil {
		return run, fmt.Errorf("removing full floor ClientIntents: %w", err)
	}
	return run, undoFloor(ctx, c, policies, p.labels)
}

// sameStatuses reads the ClientIntents back and counts the statuses equal to those the
// operator wrote in the bulk; any other is an error, since the floor would then not
// write what the operator writes.
func sameStatuses(ctx context.Context, c client.Client, p *fullFloorPlan) (int, error) {
	var list v2beta1.ClientIntentsList
	if err := c.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("reading the full floor's ClientIntents back: %w", err)
	}
	got := map[client.ObjectKey]*v2beta1.ClientIntentsStatus{}
	for i := range list.Items {
		got[client.ObjectKeyFromObject(&list.Items[i])] = &list.Items[i].Status
	}
	for i, ci := range p.intents {
		k := client.ObjectKeyFromObject(ci)
		st, ok := got[k]
		if !ok || !equality.Semantic.DeepEqual(st, &p.statuses[i]) {
			return 0, fmt.Errorf("the full floor's status of ClientIntents %s differs from the operator's in the bulk", k)
		}
	}
	return len(p.intents), nil
}

// measureFullFloor runs the full floor runs times and reports the medians; the first run
// checks the statuses, the last one's writes are counted from the API server's metrics.
func measureFullFloor(ctx context.Context, c client.Client, scrape func() (apiWrites, error), p *fullFloorPlan, runs int) (fullFloor, error) {
	var f fullFloor
	for i := range max(runs, 1) {
		run, err := writeFullFloor(ctx, c, scrape, p, i == 0)
		if err != nil {
			return f, err
		}
		if i == 0 {
			f.StatusesEqual = run.equal
		}
		f.Writes = run.writes
		f.Runs, f.InputRuns = append(f.Runs, run.total.Seconds()), append(f.InputRuns, run.input.Seconds())
	}
	f.Seconds, f.InputSeconds = median(f.Runs), median(f.InputRuns)
	return f, nil
}

// clearBulk removes, with the operator stopped, what the bulk and the single changes left
// in the generated namespaces (ClientIntents, ProtectedServices, the operator's
// NetworkPolicies and pod labels), so that the full floor starts from the cluster the
// other floors wrote to.
func clearBulk(ctx context.Context, c client.Client, namespaces []string, labels []podLabel) error {
	managed := client.MatchingLabels{ownership.Label: ownership.IntentsOperator}
	for _, ns := range namespaces {
		for _, del := range []struct {
			obj  client.Object
			opts []client.DeleteAllOfOption
		}{
			{&v2beta1.ClientIntents{}, []client.DeleteAllOfOption{client.InNamespace(ns)}},
			{&v2beta1.ProtectedService{}, []client.DeleteAllOfOption{client.InNamespace(ns)}},
			{&networkingv1.NetworkPolicy{}, []client.DeleteAllOfOption{client.InNamespace(ns), managed}},
		} {
			if err := c.DeleteAllOf(ctx, del.obj, del.opts...); err != nil {
				return fmt.Errorf("clearing %T in %s: %w", del.obj, ns, err)
			}
		}
	}
	if err := parallel(len(labels), 16, func(i int) error { return patchLabels(ctx, c, labels[i], true) }); err != nil {
		return fmt.Errorf("removing the operator's pod labels: %w", err)
	}
	return nil
}
