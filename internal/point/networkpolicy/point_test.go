package networkpolicy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

func intentsOn(name string, generation int64, servers ...string) v2beta1.ClientIntents {
	ci := v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: generation}}
	ci.Spec.Workload.Name = name
	for _, s := range servers {
		ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: s}})
	}
	return ci
}

func protectorOf(name string, generation int64) v2beta1.ProtectedService {
	ps := v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-protected", Generation: generation}}
	ps.Spec.Name = name
	return ps
}

// The record of a reconcile says what the plan and its outcome mean for the intents and
// the ProtectedServices of the server, without looking at the cluster again.
func TestOutcomeOfEachPlan(t *testing.T) {
	server := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}}
	service := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}, Service: true}
	policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: compile.PolicyName(server)}}
	intents := []v2beta1.ClientIntents{intentsOn("client", 1, "api")}
	enforced := compile.Plan{Intents: intents, Enforced: true, Exists: true, Policy: policy}
	taken := nameTakenError{key: client.ObjectKeyFromObject(policy)}
	for _, tt := range []struct {
		name      string
		server    intent.Server
		plan      compile.Plan
		err       error
		state     enforcement.State
		psState   enforcement.State
		missing   bool
		inHand    bool
		object    string
		inMessage string
	}{
		{"enforced", server, enforced, nil, enforcement.Enforced, enforcement.Enforced, false, false, policy.Name, "admits this client"},
		{"no pods yet", server, func() compile.Plan { p := enforced; p.Exists = false; return p }(), nil, enforcement.Enforced, enforcement.Enforced, true, false, policy.Name, "no pods of"},
		{"write failed", server, enforced, errors.New("connection refused"), enforcement.Waiting, enforcement.Waiting, false, true, "", "to be written"},
		{"name taken", server, enforced, taken, enforcement.Failed, enforcement.Failed, false, false, "", "leaving it alone"},
		{"kind misspelled", server, compile.Plan{Intents: intents, KindMeant: "Deployment"}, nil, enforcement.Failed, enforcement.Failed, false, false, "", "case-sensitive"},
		{"namespace missing", server, compile.Plan{Intents: intents, NamespaceMissing: true}, nil, enforcement.Waiting, enforcement.Waiting, true, false, "", "waiting for namespace"},
		{"service without selector", service, compile.Plan{Intents: intents, NoSelector: true}, nil, enforcement.Failed, enforcement.Waiting, false, false, "", "no pod selector"},
		{"service missing", service, compile.Plan{Intents: intents}, nil, enforcement.Waiting, enforcement.Waiting, true, false, "", "waiting for Service"},
		{"shadow", server, compile.Plan{Intents: intents, Exists: true}, nil, enforcement.Shadow, enforcement.Waiting, false, false, "", "shadow mode"},
		{"nothing selects", server, compile.Plan{Intents: intents, Enforced: true, Exists: true}, nil, enforcement.Failed, enforcement.Waiting, false, false, "", "no NetworkPolicy can select"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := outcome(tt.server, tt.plan, tt.err)
			got := r.forIntents
			if got.State != tt.state || r.forProtected.State != tt.psState || got.Missing != tt.missing || got.InHand != tt.inHand || got.Object != tt.object || !strings.Contains(got.Message, tt.inMessage) {
				t.Fatalf("got %+v (ProtectedService %+v), want state %s/%s missing %v in hand %v object %q, message with %q",
					got, r.forProtected, tt.state, tt.psState, tt.missing, tt.inHand, tt.object, tt.inMessage)
			}
			if gen, _ := r.intents.of(client.ObjectKeyFromObject(&intents[0])); gen != 1 {
				t.Fatalf("the record does not say which generation of the intents it reflects: %v", r.intents)
			}
		})
	}
	if outcome(server, compile.Plan{}, nil) != nil {
		t.Fatal("a server nothing refers to keeps a record")
	}
}

// Status reads a record only for the generation of the intents it was made from: a newer
// generation is in hand until the reconciler records it.
func TestOutcomesReadOnlyRecordsOfTheSameGeneration(t *testing.T) {
	p := newPoint()
	server := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}}
	policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: compile.PolicyName(server)}}
	ci := intentsOn("client", 1, "api")
	ps := protectorOf("api", 1)
	notices := p.Subscribe()
	p.record(server, compile.Plan{Intents: []v2beta1.ClientIntents{ci}, Protectors: []v2beta1.ProtectedService{ps}, Enforced: true, Exists: true, Policy: policy}, nil)
	noticed := map[string]bool{}
	for len(notices) > 0 {
		e := <-notices
		noticed[e.Object.GetName()] = true
	}
	if !noticed["client"] || !noticed["api-protected"] {
		t.Fatalf("the first record notified %v, want the intents and the ProtectedService", noticed)
	}
	got, _ := p.Outcomes(context.Background(), &ci)
	if len(got) != 1 || got[0].State != enforcement.Enforced || got[0].Target != "kubernetes api" {
		t.Fatalf("recorded outcome read as %+v", got)
	}
	prot, _ := p.Protection(context.Background(), &ps)
	if len(prot) != 1 || prot[0].State != enforcement.Enforced || prot[0].Object != policy.Name {
		t.Fatalf("recorded protection read as %+v", prot)
	}
	ci.Generation = 2
	got, _ = p.Outcomes(context.Background(), &ci)
	if len(got) != 1 || got[0].State != enforcement.Waiting || !got[0].InHand || got[0].Since.IsZero() {
		t.Fatalf("a generation not recorded yet read as %+v, want Waiting in hand", got)
	}
}

// Only the intents whose outcome changed are notified: a record that says the same to
// everyone notifies nobody, a new generation notifies its intents, a new state everyone.
func TestChangedNotifiesOnlyWhoseOutcomeChanged(t *testing.T) {
	server := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}}
	policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: compile.PolicyName(server)}}
	a, b := intentsOn("a", 1, "api"), intentsOn("b", 1, "api")
	plan := func(err error, intents ...v2beta1.ClientIntents) *record {
		return outcome(server, compile.Plan{Intents: intents, Enforced: true, Exists: true, Policy: policy}, err)
	}
	names := func(objs []client.Object) string {
		var out []string
		for _, o := range objs {
			out = append(out, o.GetName())
		}
		return strings.Join(out, ",")
	}
	a2 := a
	a2.Generation = 2
	for _, tt := range []struct {
		name       string
		prev, next *record
		want       string
	}{
		{"same", plan(nil, a, b), plan(nil, a, b), ""},
		{"new generation", plan(nil, a, b), plan(nil, a2, b), "a"},
		{"intents added", plan(nil, a), plan(nil, a, b), "b"},
		{"intents gone", plan(nil, a, b), plan(nil, a), "b"},
		{"state changed", plan(nil, a, b), plan(errors.New("refused"), a, b), "a,b"},
		{"record dropped", plan(nil, a), nil, "a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Split(names(changed(tt.prev, tt.next)), ",")
			want := strings.Split(tt.want, ",")
			slices.Sort(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("notified %v, want %v", got, want)
			}
		})
	}
}

// A change waiting its turn while the reconciler works through its queue counts its wait
// from now; once the queue stops moving, from when it was taken in hand.
func TestAWaitCountsOnlyOnceTheQueueStops(t *testing.T) {
	p := newPoint()
	within := 100 * time.Millisecond
	p.progress.activity.Within = within
	ci := intentsOn("client", 1, "api")
	server := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}}
	taken := time.Now().Add(-time.Minute)
	p.progress.mark(serverRequest(server))
	p.progress.servers[serverRequest(server)].since = taken

	p.progress.finish(req("other"), p.progress.begin(), nil) // another server carried out
	got, _ := p.Outcomes(context.Background(), &ci)
	if len(got) != 1 || !got[0].InHand || time.Since(got[0].Since) > time.Second {
		t.Fatalf("while the queue moves: %+v, want in hand since about now", got)
	}
	time.Sleep(2 * within)
	token := p.progress.begin() // a long reconcile of another server
	if got, _ = p.Outcomes(context.Background(), &ci); time.Since(got[0].Since) > time.Second {
		t.Fatalf("while another server is reconciled: %+v, want in hand since about now", got)
	}
	p.progress.finish(req("other"), token, nil)
	time.Sleep(2 * within)
	p.progress.activity.Hold(true) // a burst held back to be queued together
	if got, _ = p.Outcomes(context.Background(), &ci); time.Since(got[0].Since) > time.Second {
		t.Fatalf("while a burst is held: %+v, want in hand since about now", got)
	}
	p.progress.activity.Hold(false)
	got, _ = p.Outcomes(context.Background(), &ci)
	if len(got) != 1 || !got[0].InHand || !got[0].Since.Equal(taken) {
		t.Fatalf("once the queue stopped: %+v, want in hand since %v", got, taken)
	}
}

// A record's generations answer as the map of them they replace, whatever the order
// the plan lists its intents in.
func TestGenerationsAnswerAsAMap(t *testing.T) {
	for n := range 12 {
		var plan compile.Plan
		want := map[types.NamespacedName]int64{}
		for i := range n {
			ci := intentsOn(fmt.Sprintf("c%02d", n-i), int64(i+1))
			ci.Namespace = fmt.Sprintf("ns%d", i%3)
			plan.Intents = append(plan.Intents, ci)
			want[client.ObjectKeyFromObject(&ci)] = ci.Generation
		}
		r := outcome(intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}}, plan, nil)
		if n == 0 {
			continue // nothing refers to the server: no record
		}
		if got := r.intents.asMap(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%d intents: generations %v, want %v", n, got, want)
		}
		for k, gen := range want {
			if got, ok := r.intents.of(k); !ok || got != gen {
				t.Errorf("%d intents: generation of %v is %d (%v), want %d", n, k, got, ok, gen)
			}
		}
		if _, ok := r.intents.of(types.NamespacedName{Namespace: "ns1", Name: "absent"}); ok {
			t.Errorf("%d intents: a generation for intents the record does not cover", n)
		}
	}
}
