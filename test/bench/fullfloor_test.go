package main

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// recorder stands for the API server in the full floor's scheduling: it records which
// writes are done and checks each status comes after its ClientIntents and its policies.
type recorder struct {
	t     *testing.T
	needs [][]int
	r     *rand.Rand

	mu                     sync.Mutex
	created, policy, label map[int]int
	status                 map[int]int
	// busy and peak count, by pool, the writes in flight now and at most.
	busy, peak [3]int
}

// The writer pools of the full floor.
const (
	creators = iota
	floorWriters
	statusWriters
)

func newRecorder(t *testing.T, needs [][]int, seed uint64) *recorder {
	return &recorder{t: t, needs: needs, r: rand.New(rand.NewPCG(seed, 3)),
		created: map[int]int{}, policy: map[int]int{}, label: map[int]int{}, status: map[int]int{}}
}

// write runs one write of a pool: it counts how many of the pool are in flight, and
// holds a random moment so that the writes interleave.
func (rec *recorder) write(pool int, do func()) {
	rec.mu.Lock()
	rec.busy[pool]++
	rec.peak[pool] = max(rec.peak[pool], rec.busy[pool])
	hold := time.Duration(rec.r.IntN(200)) * time.Microsecond
	rec.mu.Unlock()
	time.Sleep(hold)
	rec.mu.Lock()
	do()
	rec.busy[pool]--
	rec.mu.Unlock()
}

func (rec *recorder) writes() fullFloorWrites {
	return fullFloorWrites{
		create: func(i int) error { rec.write(creators, func() { rec.created[i]++ }); return nil },
		policy: func(i int) error { rec.write(floorWriters, func() { rec.policy[i]++ }); return nil },
		label:  func(i int) error { rec.write(floorWriters, func() { rec.label[i]++ }); return nil },
		status: func(i int) error {
			rec.write(statusWriters, func() {
				if rec.created[i] != 1 {
					rec.t.Errorf("status of ClientIntents %d written before it was created", i)
				}
				for _, p := range rec.needs[i] {
					if rec.policy[p] != 1 {
						rec.t.Errorf("status of ClientIntents %d written before policy %d", i, p)
					}
				}
				rec.status[i]++
			})
			return nil
		},
	}
}

// Whatever the calls and the order writes finish in, every write is made once, each
// status only after its ClientIntents and the policies it needs, with at most 16
// creators, 4 policy and label writers and 8 status writers in flight, and the creates alone take no longer than the run.
func TestRunFullFloorOrder(t *testing.T) {
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 1))
		intents, policies, labels := r.IntN(40), 1+r.IntN(30), r.IntN(10)
		needs := make([][]int, intents)
		for i := range needs {
			for range r.IntN(5) {
				// Repeats happen: two calls to one server need one policy.
				needs[i] = append(needs[i], r.IntN(policies))
			}
		}
		rec := newRecorder(t, needs, seed)
		total, input, err := runFullFloor(needs, policies, labels, rec.writes())
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if input > total {
			t.Fatalf("seed %d: creates took %v, longer than the run's %v", seed, input, total)
		}
		for _, tc := range []struct {
			what string
			done map[int]int
			n    int
		}{{"ClientIntents", rec.created, intents}, {"policies", rec.policy, policies}, {"pod labels", rec.label, labels}, {"statuses", rec.status, intents}} {
			if len(tc.done) != tc.n {
				t.Fatalf("seed %d: %d %s written, want %d", seed, len(tc.done), tc.what, tc.n)
			}
			for i, n := range tc.done {
				if n != 1 {
					t.Fatalf("seed %d: %s %d written %d times", seed, tc.what, i, n)
				}
			}
		}
		for pool, limit := range [3]int{creators: 16, floorWriters: 4, statusWriters: 8} {
			if rec.peak[pool] > limit {
				t.Fatalf("seed %d: %v creators, policy writers and status writers in flight at once, want at most 16, 4 and 8", seed, rec.peak)
			}
		}
	}
}

// A failed write fails the run, but still lets what waits for it through, so that the
// run ends instead of waiting for a status that can never be released.
func TestRunFullFloorFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail string
	}{{"a policy", "policy"}, {"a ClientIntents", "create"}, {"a status", "status"}, {"a pod label", "label"}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			statuses := 0
			boom := errors.New("refused")
			w := func(kind string) func(int) error {
				return func(i int) error {
					if kind == "status" {
						mu.Lock()
						statuses++
						mu.Unlock()
					}
					if kind == tc.fail && i == 1 {
						return boom
					}
					return nil
				}
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := runFullFloor([][]int{{0}, {1}, {0, 1}}, 2, 2, fullFloorWrites{create: w("create"), policy: w("policy"), label: w("label"), status: w("status")})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, boom) {
					t.Fatalf("got %v, want the failed write's error", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the run did not end")
			}
			if statuses != 3 {
				t.Fatalf("%d statuses attempted, want all 3", statuses)
			}
		})
	}
}

// The plan pairs each ClientIntents with its own converged status and the indexes of the
// policies it needs, and refuses a ClientIntents the bulk did not leave or a policy the
// floor does not write.
func TestNewFullFloorPlan(t *testing.T) {
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: "n", Name: name} }
	ci := func(name string, gen int64) *v2beta1.ClientIntents {
		return &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: name},
			Status: v2beta1.ClientIntentsStatus{ObservedGeneration: gen, Enforcement: name}}
	}
	policy := func(name string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: name}}
	}
	want := map[client.ObjectKey]*networkingv1.NetworkPolicy{key("p"): policy("p"), key("q"): policy("q")}
	needs := map[client.ObjectKey][]client.ObjectKey{key("a"): {key("p"), key("q")}, key("b"): {key("q")}}
	bulk := []*v2beta1.ClientIntents{{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "b"}}}
	converged := []v2beta1.ClientIntents{*ci("b", 2), *ci("a", 1), *ci("other", 1)}

	p, err := newFullFloorPlan(bulk, converged, want, needs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.intents) != 2 || p.statuses[0].Enforcement != "a" || p.statuses[1].Enforcement != "b" || p.statuses[1].ObservedGeneration != 2 {
		t.Fatalf("statuses %+v, want a's then b's", p.statuses)
	}
	for i, ci := range p.intents {
		var got []string
		for _, n := range p.needs[i] {
			got = append(got, p.policies[n].Name)
		}
		var exp []string
		for _, k := range needs[client.ObjectKeyFromObject(ci)] {
			exp = append(exp, k.Name)
		}
		if strings.Join(got, ",") != strings.Join(exp, ",") {
			t.Fatalf("%s needs %v, want %v", ci.Name, got, exp)
		}
	}

	if _, err := newFullFloorPlan(bulk, converged[:1], want, needs, nil); err == nil {
		t.Fatal("a ClientIntents missing from the converged cluster was accepted")
	}
	if _, err := newFullFloorPlan(bulk, converged, map[client.ObjectKey]*networkingv1.NetworkPolicy{key("q"): policy("q")}, needs, nil); err == nil {
		t.Fatal("a needed policy the floor does not write was accepted")
	}
}
