package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// bulkWatch follows, on watches opened before the bulk starts, the operator's
// NetworkPolicies, the pods' labels and the ClientIntents: when each policy was last
// written, when each ClientIntents last turned Ready, and when enforcement first was
// complete: every expected policy equal to the compiled one and every pod the policies
// select by the operator's labels carrying them. Only times and verdicts are kept, not
// the objects, so that it stays small at 10,000 workloads.
type bulkWatch struct {
	want   map[client.ObjectKey]*networkingv1.NetworkPolicy
	labels map[client.ObjectKey]map[string]string

	mu         sync.Mutex
	good       map[part]bool
	nGood      int
	lastPolicy map[client.ObjectKey]time.Time
	readyAt    map[client.ObjectKey]time.Time
	converged  chan struct{}
}

func newBulkWatch(want map[client.ObjectKey]*networkingv1.NetworkPolicy, labels []podLabel) *bulkWatch {
	b := &bulkWatch{
		want:       want,
		labels:     map[client.ObjectKey]map[string]string{},
		good:       map[part]bool{},
		lastPolicy: map[client.ObjectKey]time.Time{},
		readyAt:    map[client.ObjectKey]time.Time{},
		converged:  make(chan struct{}),
	}
	for _, l := range labels {
		b.labels[client.ObjectKey{Namespace: l.ns, Name: l.name}] = l.labels
	}
	return b
}

// start opens both watches; they run until ctx ends. It returns once both are open, so
// that nothing written afterwards is missed.
func (b *bulkWatch) start(ctx context.Context, c client.WithWatch) error {
	managed := client.MatchingLabels{ownership.Label: ownership.IntentsOperator}
	opened := make(chan error, 3)
	go follow(ctx, c, &networkingv1.NetworkPolicyList{}, []client.ListOption{managed}, opened, func(obj any, deleted bool, at time.Time) {
		if p, ok := obj.(*networkingv1.NetworkPolicy); ok {
			b.notePolicy(client.ObjectKeyFromObject(p), !deleted && b.upToDate(p), at)
		}
	})
	go follow(ctx, c, &v2beta1.ClientIntentsList{}, nil, opened, func(obj any, deleted bool, at time.Time) {
		if ci, ok := obj.(*v2beta1.ClientIntents); ok {
			b.noteIntents(client.ObjectKeyFromObject(ci), !deleted && meta.IsStatusConditionTrue(ci.Status.Conditions, enforcement.ConditionReady), at)
		}
	})
	go follow(ctx, c, informer.PodMetaList(), nil, opened, func(obj any, deleted bool, at time.Time) {
		if p, ok := obj.(*metav1.PartialObjectMetadata); ok {
			b.notePod(client.ObjectKeyFromObject(p), !deleted && b.labelled(p), at)
		}
	})
	for range 3 {
		if err := <-opened; err != nil {
			return err
		}
	}
	return nil
}

func (b *bulkWatch) upToDate(p *networkingv1.NetworkPolicy) bool {
	w, ok := b.want[client.ObjectKeyFromObject(p)]
	return ok && compile.UpToDate(w, p)
}

// labelled reports whether the pod carries the operator labels enforcement needs on it.
func (b *bulkWatch) labelled(p *metav1.PartialObjectMetadata) bool {
	want, ok := b.labels[client.ObjectKeyFromObject(p)]
	if !ok {
		return false
	}
	for k, v := range want {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

func (b *bulkWatch) notePolicy(k client.ObjectKey, good bool, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastPolicy[k] = at
	if _, wanted := b.want[k]; wanted {
		b.mark(policyKey(k), good)
	}
}

func (b *bulkWatch) notePod(k client.ObjectKey, good bool, _ time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, wanted := b.labels[k]; wanted {
		b.mark(podKey(k), good)
	}
}

// part is one thing enforcement needs: a policy or a pod's labels.
type part struct {
	pod bool
	key client.ObjectKey
}

func policyKey(k client.ObjectKey) part { return part{key: k} }
func podKey(k client.ObjectKey) part    { return part{pod: true, key: k} }

// mark records whether one part is in place, and closes converged once all are; b.mu is held.
func (b *bulkWatch) mark(p part, good bool) {
	if b.good[p] == good {
		return
	}
	b.good[p] = good
	if good {
		b.nGood++
	} else {
		b.nGood--
	}
	if b.nGood == len(b.want)+len(b.labels) {
		select {
		case <-b.converged:
		default:
			close(b.converged)
		}
	}
}

func (b *bulkWatch) noteIntents(k client.ObjectKey, ready bool, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, was := b.readyAt[k]
	switch {
	case ready && !was:
		b.readyAt[k] = at
	case !ready:
		delete(b.readyAt, k)
	}
}

// readyLags returns, for every ClientIntents in needs, the time from the last write of
// the policies its calls need to its turning Ready (negative when it turned Ready first),
// and how many are not Ready.
func (b *bulkWatch) readyLags(needs map[client.ObjectKey][]client.ObjectKey) (lags []time.Duration, notReady int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ci, policies := range needs {
		ready, ok := b.readyAt[ci]
		if !ok {
			notReady++
			continue
		}
		var last time.Time
		for _, p := range policies {
			if t := b.lastPolicy[p]; t.After(last) {
				last = t
			}
		}
		lags = append(lags, ready.Sub(last))
	}
	return lags, notReady
}

// lagSummary is the spread of Ready lags, in milliseconds.
type lagSummary struct {
	MaxMs float64 `json:"maxMs"`
	P99Ms float64 `json:"p99Ms"`
	// Early counts the ClientIntents that turned Ready before their last policy write.
	Early int `json:"readyBeforeItsPolicies"`
	// NotReady counts the ClientIntents not Ready once the operator was quiet.
	NotReady int `json:"notReady"`
}

// summarize returns the maximum and the 99th percentile (nearest rank) of the lags.
func summarize(lags []time.Duration, notReady int) lagSummary {
	s := lagSummary{NotReady: notReady}
	if len(lags) == 0 {
		return s
	}
	sorted := append([]time.Duration(nil), lags...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, l := range sorted {
		if l < 0 {
			s.Early++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rank := int(math.Ceil(0.99*float64(len(sorted)))) - 1
	s.MaxMs, s.P99Ms = ms(sorted[len(sorted)-1]), ms(sorted[rank])
	return s
}

// follow lists and then watches list's kind, handing every object to note with the time
// it was seen; when a watch ends (it expired, or the server closed it) it lists again and
// hands on only the objects that changed meanwhile, so that a relist does not pass for a
// write. It reports on opened once the first watch is open, and runs until ctx ends.
func follow(ctx context.Context, c client.WithWatch, list client.ObjectList, opts []client.ListOption, opened chan<- error, note func(obj any, deleted bool, at time.Time)) {
	first := true
	report := func(err error) {
		switch {
		case first:
			opened <- err
			first = false
		case err != nil && ctx.Err() == nil:
			// Later failures leave the figures short; the wait for convergence times out.
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	// versions holds the resource version last seen of each object.
	versions := map[client.ObjectKey]string{}
	seen := func(obj any) bool {
		o, ok := obj.(client.Object)
		if !ok {
			return false
		}
		k := client.ObjectKeyFromObject(o)
		if versions[k] == o.GetResourceVersion() {
			return false
		}
		versions[k] = o.GetResourceVersion()
		return true
	}
	for ctx.Err() == nil {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, opts...); err != nil {
			report(fmt.Errorf("listing %T: %w", list, err))
			return
		}
		now := time.Now()
		if err := meta.EachListItem(l, func(o runtime.Object) error {
			if seen(o) {
				note(o, false, now)
			}
			return nil
		}); err != nil {
			report(err)
			return
		}
		w, err := c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: l.GetResourceVersion()}})...)
		if err != nil {
			report(fmt.Errorf("watching %T: %w", list, err))
			return
		}
		report(nil)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break // the watch expired: list again
			}
			seen(ev.Object)
			note(ev.Object, ev.Type == watch.Deleted, time.Now())
		}
		w.Stop()
	}
}

// activity is what the operator did from the bulk's start until it was quiet.
type activity struct {
	// start and end are the operator's samples at the start and once quiet.
	start, end process.Sample
	// cpu is the CPU time the operator used in between.
	cpu time.Duration
	// lastWrite is when a sample last saw its write count grow.
	lastWrite time.Time
	// peakHeap is the largest heap in use sampled.
	peakHeap float64
}

// followOperator samples the operator's metrics and CPU time every 100 ms from now until
// done is closed and, after that, the operator has for the quiet period made no write,
// reconciled nothing and had nothing queued.
func followOperator(ctx context.Context, op *process.Operator, done <-chan struct{}, quiet time.Duration) (activity, error) {
	var a activity
	var err error
	if a.start, err = op.Sample(); err != nil {
		return a, err
	}
	cpu0, err := op.CPUTime()
	if err != nil {
		return a, err
	}
	last, lastActive := a.start, time.Now()
	a.lastWrite, a.peakHeap = lastActive, a.start.HeapBytes
	finished := false
	for {
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		select {
		case <-done:
			finished = true
		default:
		}
		s, err := op.Sample()
		if err != nil {
			return a, err
		}
		now := time.Now()
		if s.Writes != last.Writes {
			a.lastWrite = now
		}
		if s.Writes != last.Writes || s.QueueDepth > 0 || s.Reconciles != last.Reconciles {
			lastActive = now
		}
		a.peakHeap = math.Max(a.peakHeap, s.HeapBytes)
		last = s
		if finished && now.Sub(lastActive) >= quiet {
			cpu, err := op.CPUTime()
			if err != nil {
				return a, err
			}
			a.end, a.cpu = s, cpu-cpu0
			return a, nil
		}
	}
}
