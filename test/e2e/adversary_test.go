package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

var (
	adversarySeed  = flag.Int64("adversary.seed", 0, "seed of the adversarial tenant test (0: time-based, printed)")
	adversarySteps = flag.Int("adversary.steps", 25, "tenant steps of the adversarial tenant test")
)

// The adversarial randomized test: victim namespaces with random workloads, intents and
// ProtectedServices, set up once and left alone, and tenant namespaces whose every step
// is a hostile or careless write (kinds that differ from a victim server's only in case,
// kinds whose old policy name is a victim's, calls to victims' workloads, ProtectedServices
// and pods that claim victims' names and labels, deletions of earlier writes). After each
// step, once the operator is quiet, a tenant may have changed nothing of the victims but
// what its own declared calls add.
func TestTenantsCannotSubvertVictims(t *testing.T) {
	seed := seedOr(*adversarySeed)
	replay := fmt.Sprintf("go test ./test/e2e -run TestTenantsCannotSubvertVictims -args -adversary.seed=%d -adversary.steps=%d", seed, *adversarySteps)
	t.Logf("seed %d (replay: %s)", seed, replay)
	widgetCRD(t)
	t.Run("networkpolicies", func(t *testing.T) {
		counter := startOperator(t, enforcement.Options{})
		w := &world{t: t, seed: seed, rnd: rand.New(rand.NewSource(seed)), counter: counter, prefix: "adv",
			workloads: map[string]*rworkload{}, intents: map[string]*rintents{}, protected: map[string]bool{}, live: map[string]bool{}, bare: map[string]*rworkload{}}
		a := &adversary{world: w, replay: replay, role: map[string]string{}, tenantIntents: map[string]bool{}}
		a.setup()
		a.check(0)
		for step := 1; step <= *adversarySteps; step++ {
			a.step()
			a.check(step)
		}
		t.Logf("%d steps: %d tenant writes accepted (%d near-collisions of a victim policy name), %d refused at admission; %d pairs into victim pods checked, %d denied, 0 wrong",
			*adversarySteps, a.accepted, a.collisions, a.refused, w.pairs, w.denied)
		if w.denied == 0 {
			t.Errorf("seed %d: no pair into a victim pod was ever denied: the run checked nothing enforced", seed)
		}
		if *adversarySteps >= 10 && a.collisions == 0 {
			t.Errorf("seed %d: no tenant write named a server whose old policy name is a victim's: the run tried no collision", seed)
		}
	})
	t.Run("certificates", func(t *testing.T) { testCertificates(t, seed, max(3, *adversarySteps/3), replay) })
	t.Run("kafka", func(t *testing.T) { testKafkaCredentials(t, seed, replay) })
	t.Run("kafka-acls", func(t *testing.T) { testKafkaACLs(t, seed, max(5, *adversarySteps*3/5), replay) })
	t.Run("spire-entries", func(t *testing.T) { testSPIREEntries(t, seed, max(5, *adversarySteps*3/5), replay) })
}

// adversary is the world of the test split into victims and tenants.
type adversary struct {
	*world
	replay string
	// victims and tenants are namespaces; role maps each to "victim" or "tenant".
	victims, tenants []string
	role             map[string]string
	// victimTargets are the servers victims declared calls to or protect.
	victimTargets []rtarget
	// baseline holds the victim namespaces' NetworkPolicies once the victims are set up,
	// by "namespace/name".
	baseline map[string]networkingv1.NetworkPolicy
	// statuses holds, per victim ClientIntents ("namespace/name"), each target's state
	// at the NetworkPolicy point once the victims are set up.
	statuses map[string]map[string]string
	// tenantIntents are the keys of w.intents the tenants wrote.
	tenantIntents map[string]bool
	// impostors are tenant pods, as "namespace/name".
	impostors []string
	// accepted, refused and collisions count the tenant writes.
	accepted, refused, collisions int
}

func (a *adversary) fail(step int, format string, args ...any) {
	a.t.Helper()
	a.t.Fatalf("seed %d, step %d (replay: %s): %s\nchanges so far:\n%s", a.seed, step, a.replay, fmt.Sprintf(format, args...), strings.Join(a.log, "\n"))
}

func (a *adversary) isVictim(ns string) bool { return a.role[ns] == "victim" }

// setup makes the victims, a few tenant workloads, and waits until every victim target
// is enforced; what is in place then is the baseline no tenant may take away.
func (a *adversary) setup() {
	for i := 0; i < 2; i++ {
		a.victims = append(a.victims, fmt.Sprintf("%s-v%d", a.prefix, i))
		a.tenants = append(a.tenants, fmt.Sprintf("%s-t%d", a.prefix, i))
	}
	for _, ns := range a.victims {
		a.role[ns] = "victim"
	}
	for _, ns := range a.tenants {
		a.role[ns] = "tenant"
	}
	a.namespaces = append(append([]string(nil), a.victims...), a.tenants...)
	for _, ns := range a.namespaces {
		a.createNamespace(ns)
	}
	for _, kind := range []string{"Deployment", "Deployment", "StatefulSet", "Pod", "CronJob", "Widget", "Deployment", "ReplicaSet"} {
		a.addWorkload(kind, a.victims[a.rnd.Intn(len(a.victims))])
	}
	for _, kind := range []string{"Deployment", "Pod"} {
		a.addWorkload(kind, a.tenants[a.rnd.Intn(len(a.tenants))])
	}
	a.services()
	a.victimIntents()
	for i := 0; i < 2; i++ {
		srv := a.pickIn(a.victims)
		key := srv.ns + "/" + srv.identity
		if a.protected[key] {
			continue
		}
		env.Create(a.t, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: srv.ns, Name: "ps-" + srv.identity}, Spec: v2beta1.ProtectedServiceSpec{Name: srv.identity}})
		a.protected[key] = true
		a.victimTargets = append(a.victimTargets, rtarget{ns: srv.ns, name: srv.identity})
		a.logf("victim protects %s", key)
	}
	if !a.quiet() {
		a.fail(0, "the victims' setup never went quiet")
	}
	// Every victim target is enforced before the tenants start; that is the baseline.
	var notYet string
	for deadline := time.Now().Add(30 * time.Second); ; {
		a.statuses, notYet = a.victimStatuses()
		if notYet == "" {
			break
		}
		if time.Now().After(deadline) {
			a.fail(0, "victims not enforced after setup: %s", notYet)
		}
		a.quiet()
	}
	a.baseline = map[string]networkingv1.NetworkPolicy{}
	for _, p := range a.victimPolicies() {
		a.baseline[p.Namespace+"/"+p.Name] = p
	}
	a.logf("--- victims set up: %d intents, %d policies; tenant steps follow", len(a.statuses), len(a.baseline))
}

// victimStatuses reads each victim ClientIntents' target states at the NetworkPolicy
// point, and says which one is not Ready or not Enforced, if any.
func (a *adversary) victimStatuses() (map[string]map[string]string, string) {
	out := map[string]map[string]string{}
	for _, ri := range a.victimIntentsList() {
		ci := a.getIntents(ri)
		if ci.Status.ObservedGeneration != ci.Generation || !apimeta.IsStatusConditionTrue(ci.Status.Conditions, enforcement.ConditionReady) {
			return nil, fmt.Sprintf("intents %s/%s not Ready: %+v", ci.Namespace, ci.Name, ci.Status.Conditions)
		}
		states := map[string]string{}
		for _, st := range ci.Status.Targets {
			if st.Point != networkpolicy.PointName {
				continue
			}
			if st.State != string(enforcement.Enforced) {
				return nil, fmt.Sprintf("intents %s/%s: target %s is %s (%s)", ci.Namespace, ci.Name, st.Target, st.State, st.Message)
			}
			states[st.Target] = st.State
		}
		out[ci.Namespace+"/"+ci.Name] = states
	}
	return out, ""
}

// pickIn picks a workload of the given namespaces.
func (a *adversary) pickIn(namespaces []string) *rworkload {
	var in []*rworkload
	for _, wl := range a.sortedWorkloads() {
		for _, ns := range namespaces {
			if wl.ns == ns {
				in = append(in, wl)
			}
		}
	}
	if len(in) == 0 {
		return nil
	}
	return in[a.rnd.Intn(len(in))]
}

// victimIntents gives most victim workloads intents calling other victim servers, by
// kind, without a kind, and through their Services, and makes sure each of the three
// forms occurs, so that every form of policy name is there to collide with.
func (a *adversary) victimIntents() {
	forms := map[string]bool{}
	var clients []*rworkload
	for _, wl := range a.sortedWorkloads() {
		if a.isVictim(wl.ns) {
			clients = append(clients, wl)
		}
	}
	targetsOf := map[string][]rtarget{}
	add := func(c *rworkload, tg rtarget) {
		for _, have := range targetsOf[c.key()] {
			if have == tg {
				return
			}
		}
		targetsOf[c.key()] = append(targetsOf[c.key()], tg)
		switch {
		case tg.service:
			forms["service"] = true
		case tg.kind != "":
			forms["kind"] = true
		default:
			forms["any"] = true
		}
	}
	target := func(c *rworkload, form string) (rtarget, bool) {
		for tries := 0; tries < 20; tries++ {
			srv := a.pickIn(a.victims)
			if srv.ns == c.ns && srv.identity == c.identity {
				continue
			}
			switch form {
			case "service":
				if srv.service {
					return rtarget{service: true, ns: srv.ns, name: "svc-" + srv.name}, true
				}
			case "kind":
				if srv.identityKind() != "" {
					return rtarget{ns: srv.ns, name: srv.identity, kind: srv.identityKind()}, true
				}
			default:
				return rtarget{ns: srv.ns, name: srv.identity}, true
			}
		}
		return rtarget{}, false
	}
	formNames := []string{"service", "kind", "any"}
	for _, c := range clients {
		if a.rnd.Intn(5) < 2 {
			continue
		}
		for n := 1 + a.rnd.Intn(3); n > 0; n-- {
			if tg, ok := target(c, formNames[a.rnd.Intn(len(formNames))]); ok {
				add(c, tg)
			}
		}
	}
	for _, form := range formNames {
		if !forms[form] {
			c := clients[a.rnd.Intn(len(clients))]
			if tg, ok := target(c, form); ok {
				add(c, tg)
			}
		}
	}
	for _, c := range clients {
		if tgs := targetsOf[c.key()]; len(tgs) > 0 {
			if err := a.putIntents(c, tgs); err != nil {
				a.fail(0, "writing victim intents of %s: %v", c.key(), err)
			}
			a.victimTargets = append(a.victimTargets, tgs...)
		}
	}
}

// putIntents creates or updates the ClientIntents of a client with the targets, and
// records them for the oracle when the API server accepts them.
func (a *adversary) putIntents(c *rworkload, targets []rtarget) error {
	var spec []v2beta1.Target
	for _, tg := range targets {
		name := tg.name
		if tg.ns != c.ns {
			name += "." + tg.ns
		}
		if tg.service {
			spec = append(spec, v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}})
		} else {
			spec = append(spec, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: tg.kind}})
		}
	}
	ctx := context.Background()
	var ci v2beta1.ClientIntents
	key := client.ObjectKey{Namespace: c.ns, Name: "ci-" + c.identity}
	err := kube.Get(ctx, key, &ci)
	switch {
	case err == nil:
		ci.Spec.Targets = spec
		err = kube.Update(ctx, &ci)
	case apierrors.IsNotFound(err):
		ci = v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: c.identity}, Targets: spec}}
		err = kube.Create(ctx, &ci)
	}
	if err != nil {
		return err
	}
	a.intents[c.ns+"/"+c.identity] = &rintents{client: c, targets: targets}
	a.logf("intents %s/%s -> %+v", c.ns, c.identity, targets)
	return nil
}

func (a *adversary) getIntents(ri *rintents) *v2beta1.ClientIntents {
	var ci v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ri.client.ns, Name: "ci-" + ri.client.identity}, &ci); err != nil {
		a.t.Fatal(err)
	}
	return &ci
}

func (a *adversary) victimIntentsList() []*rintents {
	var out []*rintents
	for k, ri := range a.intents {
		if !a.tenantIntents[k] {
			out = append(out, ri)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].client.key() < out[j].client.key() })
	return out
}

// caseVariant spells a kind differently in case only, the way a hostile tenant would to
// land on the lower-cased kind of a victim's policy name.
func (a *adversary) caseVariant(kind string) string {
	for {
		var b strings.Builder
		for i, r := range kind {
			switch {
			case i == 0:
				b.WriteString(strings.ToUpper(string(r))) // the schema wants a capital first
			case a.rnd.Intn(2) == 0:
				b.WriteString(strings.ToUpper(string(r)))
			default:
				b.WriteString(strings.ToLower(string(r)))
			}
		}
		if v := b.String(); v != kind {
			return v
		}
	}
}

// collision returns a target of another server whose policy name, in the naming that
// lowered the kind, is the one of a server the victims declared or protect: the kind
// respelt, "Any" against a target without a kind, "Service" against a Service target.
func (a *adversary) collision() rtarget {
	v := a.victimTargets[a.rnd.Intn(len(a.victimTargets))]
	switch {
	case v.service:
		return rtarget{ns: v.ns, name: v.name, kind: a.caseVariant("Service")}
	case v.kind != "":
		return rtarget{ns: v.ns, name: v.name, kind: a.caseVariant(v.kind)}
	default:
		return rtarget{ns: v.ns, name: v.name, kind: a.caseVariant("Any")}
	}
}

// tenantTarget returns one target a tenant declares: a near-collision, a call to a
// victim server as it is, to a workload of a victim namespace with a tenant's name, or
// to a tenant's own workload.
func (a *adversary) tenantTarget(c *rworkload) (rtarget, bool) {
	switch op := a.rnd.Intn(10); {
	case op < 4:
		return a.collision(), true
	case op < 7:
		return a.victimTargets[a.rnd.Intn(len(a.victimTargets))], true
	case op < 8:
		if srv := a.pickIn(a.victims); srv != nil {
			return rtarget{ns: srv.ns, name: srv.identity}, true
		}
	case op < 9:
		if srv := a.pickIn(a.tenants); srv != nil {
			return rtarget{ns: a.victims[a.rnd.Intn(len(a.victims))], name: srv.identity, kind: srv.identityKind()}, true
		}
	default:
		if srv := a.pickIn(a.tenants); srv != nil && !(srv.ns == c.ns && srv.identity == c.identity) {
			return rtarget{ns: srv.ns, name: srv.identity, kind: srv.identityKind()}, true
		}
	}
	return rtarget{}, false
}

// tenantClient returns the client a tenant writes intents for: one of its workloads or
// impostors, or a name a victim uses (pods of that name may come later).
func (a *adversary) tenantClient() *rworkload {
	ns := a.tenants[a.rnd.Intn(len(a.tenants))]
	if a.rnd.Intn(2) == 0 {
		if v := a.pickIn(a.victims); v != nil {
			return &rworkload{ns: ns, name: v.identity, identity: v.identity}
		}
	}
	var own []*rworkload
	for _, wl := range a.sortedWorkloads() {
		if wl.ns == ns {
			own = append(own, wl)
		}
	}
	for _, k := range a.impostors {
		if wl := a.bare[k]; wl != nil && wl.ns == ns {
			own = append(own, wl)
		}
	}
	if len(own) == 0 {
		return &rworkload{ns: ns, name: "nobody", identity: "nobody"}
	}
	return own[a.rnd.Intn(len(own))]
}

// step makes one tenant write.
func (a *adversary) step() {
	ctx := context.Background()
	switch op := a.rnd.Intn(13); {
	case op < 5:
		c := a.tenantClient()
		var targets []rtarget
		seen := map[rtarget]bool{}
		collides := false
		for n := 1 + a.rnd.Intn(4); n > 0; n-- {
			tg, ok := a.tenantTarget(c)
			if !ok || seen[tg] || (!tg.service && tg.ns == c.ns && tg.name == c.identity) {
				continue
			}
			seen[tg] = true
			targets = append(targets, tg)
			if tg.kind != "" && a.isVictim(tg.ns) && a.collidesWithVictim(tg) {
				collides = true
			}
		}
		if len(targets) == 0 {
			return
		}
		a.tenantWrite(a.putIntents(c, targets), func() {
			a.tenantIntents[c.ns+"/"+c.identity] = true
			if collides {
				a.collisions++
			}
		})
	case op == 5:
		// The lower-cased kind itself: the schema refuses it; if it were let through it
		// would be one more server whose kind matches nothing.
		c := a.tenantClient()
		v := a.victimTargets[a.rnd.Intn(len(a.victimTargets))]
		tg := rtarget{ns: v.ns, name: v.name, kind: strings.ToLower(v.kind)}
		if tg.kind == "" {
			tg.kind = "any"
		}
		a.tenantWrite(a.putIntents(c, []rtarget{tg}), func() {
			a.tenantIntents[c.ns+"/"+c.identity] = true
			a.collisions++
		})
	case op == 6:
		keys := a.sortedKeys(a.tenantIntents)
		if len(keys) == 0 {
			return
		}
		k := keys[a.rnd.Intn(len(keys))]
		ri := a.intents[k]
		deleteObj(a.t, &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ri.client.ns, Name: "ci-" + ri.client.identity}})
		delete(a.intents, k)
		delete(a.tenantIntents, k)
		a.logf("tenant deletes intents %s", k)
	case op == 7:
		// A ProtectedService in a tenant namespace naming a victim's identity.
		v := a.pickIn(a.victims)
		ns := a.tenants[a.rnd.Intn(len(a.tenants))]
		key := ns + "/" + v.identity
		ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ps-" + v.identity}, Spec: v2beta1.ProtectedServiceSpec{Name: v.identity}}
		if a.protected[key] {
			deleteObj(a.t, ps)
			delete(a.protected, key)
			a.logf("tenant unprotects %s", key)
			return
		}
		a.tenantWrite(kube.Create(ctx, ps), func() {
			a.protected[key] = true
			a.logf("tenant protects %s", key)
		})
	case op == 8:
		a.impostor()
	case op == 9:
		if len(a.impostors) == 0 {
			return
		}
		i := a.rnd.Intn(len(a.impostors))
		k := a.impostors[i]
		ns, name, _ := strings.Cut(k, "/")
		deleteObj(a.t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		a.impostors = append(a.impostors[:i], a.impostors[i+1:]...)
		delete(a.bare, k)
		a.logf("tenant deletes pod %s", k)
	case op == 11:
		// A tenant workload goes away; intents naming it stay.
		if wl := a.pickIn(a.tenants); wl != nil {
			a.deleteWorkload(wl)
			a.accepted++
		}
	default:
		// A tenant workload with a victim workload's name.
		v := a.pickIn(a.victims)
		ns := a.tenants[a.rnd.Intn(len(a.tenants))]
		if _, taken := a.workloads[ns+"."+v.name]; taken {
			return
		}
		kinds := []string{"Deployment", "StatefulSet", "Pod", v.kind}
		a.seq++
		a.addNamedWorkload(kinds[a.rnd.Intn(len(kinds))], ns, v.name)
		a.accepted++
	}
}

// collidesWithVictim reports whether a kinded target's policy name, with the kind lower
// cased, is that of a server the victims declared or protect, while being another server.
func (a *adversary) collidesWithVictim(tg rtarget) bool {
	old := func(t rtarget) string {
		switch {
		case t.service:
			return "service." + t.name
		case t.kind == "":
			return "any." + t.name
		}
		return strings.ToLower(t.kind) + "." + t.name
	}
	for _, v := range a.victimTargets {
		if v.ns == tg.ns && v != tg && old(v) == old(tg) {
			return true
		}
	}
	return false
}

// tenantWrite counts a tenant write, runs record if the API server took it, and logs a
// refusal otherwise (a refusal is an answer the model allows).
func (a *adversary) tenantWrite(err error, record func()) {
	if err != nil {
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
			a.t.Fatalf("seed %d: tenant write failed other than by refusal: %v", a.seed, err)
		}
		a.refused++
		a.logf("tenant write refused: %v", err)
		return
	}
	a.accepted++
	record()
}

// impostor makes a tenant pod (owned by a Widget, so nothing adopts it) that carries a
// victim pod's labels, the operator's labels among them, and usually names itself after
// the victim with the workload-name annotation: it is then that name in the tenant's
// namespace, and nothing more.
func (a *adversary) impostor() {
	v := a.pickIn(a.victims)
	var pods corev1.PodList
	if err := kube.List(context.Background(), &pods, client.InNamespace(v.ns), client.MatchingLabels{"w": v.name}); err != nil {
		a.t.Fatal(err)
	}
	lbls := map[string]string{"w": v.name}
	if len(pods.Items) > 0 {
		for k, val := range pods.Items[0].Labels {
			lbls[k] = val
		}
	}
	ns := a.tenants[a.rnd.Intn(len(a.tenants))]
	a.seq++
	name := fmt.Sprintf("impostor%d", a.seq)
	id := &rworkload{ns: ns, name: name, kind: "Widget", identity: name, replicas: 1}
	var ann map[string]string
	if a.rnd.Intn(4) != 0 {
		id.identity, id.annotated = v.identity, true
		ann = map[string]string{identity.WorkloadNameAnnotation: v.identity}
	} else {
		// Without the claim, the operator's labels would name another identity than the
		// pod's; it takes them off, which the model does not promise at every moment.
		delete(lbls, compile.WorkloadLabel)
		delete(lbls, compile.WorkloadKindLabel)
	}
	owner := widget(a.t, ns, name)
	env.Create(a.t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-0", Labels: lbls, Annotations: ann,
		OwnerReferences: controllerRef(owner, "test.intentguard.dev/v1", "Widget")}, Spec: podSpec(corev1.RestartPolicyAlways)})
	k := ns + "/" + name + "-0"
	a.bare[k] = id
	a.impostors = append(a.impostors, k)
	a.accepted++
	a.logf("tenant pod %s (identity %s) with the labels of %s: %v", k, id.identity, v.key(), lbls)
}

func (a *adversary) sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// check waits for quiet and asserts the four properties: connectivity into victim pods
// is the oracle's, victim statuses are as they were and true, the policies settle, and
// victim policies gained nothing but the tenants' declared clients. When the policies
// never settle, the other properties are still checked once, so that the failure says
// what the write loop does to the victims.
func (a *adversary) check(step int) {
	var problems []string
	settled := a.quiet()
	if !settled {
		before := a.policyWrites()
		time.Sleep(2 * time.Second)
		if writes := a.policyWrites()[len(before):]; len(writes) > 0 {
			problems = append(problems, fmt.Sprintf("the NetworkPolicies never settle: %d NetworkPolicy writes in 2s after 30s, e.g.\n%s", len(writes), strings.Join(writes[:min(len(writes), 10)], "\n")))
		}
	}
	if len(problems) == 0 {
		before := len(a.policyWrites())
		time.Sleep(750 * time.Millisecond)
		if writes := a.policyWrites()[before:]; len(writes) > 0 {
			problems = append(problems, fmt.Sprintf("NetworkPolicy writes after the operator went quiet (a write loop):\n%s", strings.Join(writes[:min(len(writes), 10)], "\n")))
		}
	}
	retries := 2
	if len(problems) > 0 {
		retries = 0
	}
	var wrong []string
	for attempt := 0; ; attempt++ {
		if wrong = a.wrongPairsTo(func(p *corev1.Pod) bool { return a.isVictim(p.Namespace) }); len(wrong) == 0 || attempt >= retries {
			break
		}
		a.quiet()
	}
	if len(wrong) > 0 {
		problems = append(problems, fmt.Sprintf("%d verdicts into victim pods differ from the declared calls:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 30)], "\n")))
	}
	problem := a.victimStatusProblem()
	for attempt := 0; attempt < retries && problem != ""; attempt++ {
		a.quiet()
		problem = a.victimStatusProblem()
	}
	if problem != "" {
		problems = append(problems, problem)
	}
	if problem := a.victimPoliciesProblem(); problem != "" {
		problems = append(problems, problem)
	}
	if len(problems) > 0 {
		a.fail(step, "%s", strings.Join(problems, "\n\n"))
	}
}

// policyWrites lists the operator's NetworkPolicy writes so far.
func (a *adversary) policyWrites() []string {
	var out []string
	for _, r := range a.counter.Requests() {
		if strings.Contains(r, "/networkpolicies") {
			out = append(out, r)
		}
	}
	return out
}

var enforcedBy = regexp.MustCompile(`NetworkPolicy ([^/ ]+)/([^ ;]+) admits`)

// victimStatusProblem holds every victim target to the state it had after setup, and
// the policy an Enforced target names to selecting the server's pods; it describes the
// first difference, or returns "".
func (a *adversary) victimStatusProblem() string {
	pods := a.livePods()
	for _, ri := range a.victimIntentsList() {
		ci := a.getIntents(ri)
		key := ci.Namespace + "/" + ci.Name
		if !apimeta.IsStatusConditionTrue(ci.Status.Conditions, enforcement.ConditionReady) {
			return fmt.Sprintf("victim intents %s no longer Ready: %+v", key, ci.Status.Conditions)
		}
		seen := 0
		for _, st := range ci.Status.Targets {
			if st.Point != networkpolicy.PointName {
				continue
			}
			seen++
			if want := a.statuses[key][st.Target]; st.State != want {
				return fmt.Sprintf("victim intents %s: target %s is %s (%s), was %s", key, st.Target, st.State, st.Message, want)
			}
			m := enforcedBy.FindStringSubmatch(st.Message)
			if m == nil {
				return fmt.Sprintf("victim intents %s: target %s names no policy: %q", key, st.Target, st.Message)
			}
			var pol networkingv1.NetworkPolicy
			if err := kube.Get(context.Background(), client.ObjectKey{Namespace: m[1], Name: m[2]}, &pol); err != nil {
				return fmt.Sprintf("victim intents %s: target %s names NetworkPolicy %s/%s: %v", key, st.Target, m[1], m[2], err)
			}
			sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
			if err != nil {
				a.t.Fatal(err)
			}
			tg := a.targetOf(ri, st.Target)
			for _, p := range pods {
				if a.serves(tg, p) && !sel.Matches(labels.Set(p.Labels)) {
					return fmt.Sprintf("victim intents %s: target %s is Enforced by NetworkPolicy %s/%s, which does not select the server's pod %s (selector %s)", key, st.Target, m[1], m[2], p.Name, sel)
				}
			}
		}
		if seen != len(a.statuses[key]) {
			return fmt.Sprintf("victim intents %s report %d targets at the NetworkPolicy point, %d after setup", key, seen, len(a.statuses[key]))
		}
	}
	return ""
}

// targetOf finds the recorded target a status line is about.
func (a *adversary) targetOf(ri *rintents, name string) rtarget {
	ci := a.getIntents(ri)
	for i, t := range ci.Spec.Targets {
		if intent.TargetName(t) == name && i < len(ri.targets) {
			return ri.targets[i]
		}
	}
	a.t.Fatalf("no target %q in the intents of %s", name, ri.client.key())
	return rtarget{}
}

// serves reports whether a pod is one of the target's server pods, by the oracle.
func (a *adversary) serves(tg rtarget, p *corev1.Pod) bool {
	if p.Namespace != tg.ns {
		return false
	}
	if tg.service {
		return p.Labels["w"] == strings.TrimPrefix(tg.name, "svc-")
	}
	id, ok := a.podIdentity(p)
	return ok && id.identity == tg.name && (tg.kind == "" || tg.kind == id.identityKind())
}

// victimPolicies lists every NetworkPolicy of the victim namespaces.
func (a *adversary) victimPolicies() []networkingv1.NetworkPolicy {
	var out []networkingv1.NetworkPolicy
	for _, ns := range a.victims {
		var list networkingv1.NetworkPolicyList
		if err := kube.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			a.t.Fatal(err)
		}
		out = append(out, list.Items...)
	}
	return out
}

// victimView is what of a policy belongs to the victims: its selector, types, the
// operator's marks, and its ingress rules with the peers of tenant namespaces taken out.
// It also returns the peers that are neither a victim's nor a tenant's client.
func (a *adversary) victimView(p *networkingv1.NetworkPolicy) (string, []string) {
	var foreign []string
	var rules []string
	for _, r := range p.Spec.Ingress {
		ports, _ := json.Marshal(r.Ports)
		if len(r.From) == 0 {
			rules = append(rules, "from anywhere on "+string(ports))
			continue
		}
		var peers []string
		for _, peer := range r.From {
			b, _ := json.Marshal(peer)
			ns := ""
			if peer.NamespaceSelector != nil && peer.IPBlock == nil && peer.PodSelector != nil && len(peer.NamespaceSelector.MatchExpressions) == 0 && len(peer.NamespaceSelector.MatchLabels) == 1 {
				ns = peer.NamespaceSelector.MatchLabels[compile.NamespaceNameLabel]
			}
			switch a.role[ns] {
			case "victim":
				peers = append(peers, string(b))
			case "tenant":
			default:
				foreign = append(foreign, string(b))
			}
		}
		if len(peers) > 0 {
			sort.Strings(peers)
			rules = append(rules, "from "+strings.Join(peers, ",")+" on "+string(ports))
		}
	}
	sort.Strings(rules)
	sel, _ := json.Marshal(p.Spec.PodSelector)
	types, _ := json.Marshal(p.Spec.PolicyTypes)
	egress, _ := json.Marshal(p.Spec.Egress)
	return fmt.Sprintf("selector %s types %s egress %s marks %s|%s|%s rules:\n  %s", sel, types, egress,
		p.Labels[ownership.Label], p.Labels[compile.ServerLabel], p.Annotations[compile.ServerAnnotation], strings.Join(rules, "\n  ")), foreign
}

// victimPoliciesProblem holds the victim namespaces' policies to the baseline: each one
// still there (the same object), identical but for peers of tenant namespaces, and any
// new policy admitting only tenant clients; which tenant pods those peers admit is the
// connectivity check's business. It describes the first difference, or returns "".
func (a *adversary) victimPoliciesProblem() string {
	now := map[string]networkingv1.NetworkPolicy{}
	for _, p := range a.victimPolicies() {
		now[p.Namespace+"/"+p.Name] = p
	}
	for k, base := range a.baseline {
		cur, ok := now[k]
		if !ok {
			return fmt.Sprintf("victim NetworkPolicy %s was deleted", k)
		}
		if cur.UID != base.UID {
			return fmt.Sprintf("victim NetworkPolicy %s was deleted and made again", k)
		}
		want, _ := a.victimView(&base)
		got, foreign := a.victimView(&cur)
		if got != want || len(foreign) > 0 {
			return fmt.Sprintf("victim NetworkPolicy %s changed beyond the tenants' declared clients:\nwas  %s\nnow  %s\nforeign peers %v", k, want, got, foreign)
		}
	}
	for k, cur := range now {
		if _, ok := a.baseline[k]; ok {
			continue
		}
		view, foreign := a.victimView(&cur)
		if len(foreign) > 0 || strings.Contains(view, "rules:\n  from") {
			return fmt.Sprintf("new NetworkPolicy %s in a victim namespace admits more than tenant clients: %s (foreign peers %v)", k, view, foreign)
		}
	}
	return ""
}
