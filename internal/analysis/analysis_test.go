package analysis

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

const ns = tutorial.Namespace

func analyze(t *testing.T, opts Options, objects ...client.Object) *Result {
	t.Helper()
	snap, err := snapshot.New(objects)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Analyze(context.Background(), snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tutorialObjects(intents ...*v2beta1.ClientIntents) []client.Object {
	out := tutorial.Objects()
	for _, ci := range intents {
		out = append(out, ci)
	}
	return out
}

func clientIntents(namespace, name string, targets ...v2beta1.Target) *v2beta1.ClientIntents {
	return &v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: name}, Targets: targets},
	}
}

func service(name string) v2beta1.Target {
	return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}}
}

func workload(name, kind string) v2beta1.Target {
	return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: kind}}
}

func tupleStrings(ts []Tuple) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, string(t.Point)+" "+t.String())
	}
	return out
}

// The tuples are the accesses the compiled objects grant, per point, with the object
// that grants each; a server no intent or ProtectedService names gets nothing.
func TestTuples(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		objects []client.Object
		want    []string
	}{
		{"tutorial", Options{}, tutorialObjects(tutorial.Intents()),
			[]string{"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/80"}},
		{"workload target, every port", Options{}, tutorialObjects(clientIntents(ns, "client", workload("server", "Deployment"))),
			[]string{"networkpolicy " + ns + "/client -> " + ns + "/server[Deployment] any"}},
		{"two clients, one server", Options{}, tutorialObjects(tutorial.Intents(), clientIntents(ns, "client-other", service("server"))),
			[]string{
				"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/80",
				"networkpolicy " + ns + "/client-other -> " + ns + "/server[Service] TCP/80",
			}},
		{"shadow mode enforces nothing unprotected", Options{Enforcement: enforcement.Options{Shadow: true}}, tutorialObjects(tutorial.Intents()), []string{}},
		{"shadow mode, enforced namespace", Options{Enforcement: enforcement.Options{Shadow: true, EnforcedNamespaces: []string{ns}}}, tutorialObjects(tutorial.Intents()),
			[]string{"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/80"}},
		{"no intents", Options{}, tutorialObjects(), []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := analyze(t, tc.opts, tc.objects...)
			if got := tupleStrings(r.Tuples); !slices.Equal(got, tc.want) {
				t.Errorf("tuples\n%v\nwant\n%v", got, tc.want)
			}
			for _, tp := range r.Tuples {
				if tp.Object == "" || len(tp.Intents) == 0 {
					t.Errorf("tuple %v names no object or intents", tp)
				}
			}
		})
	}
}

// A protected server without intents gets a policy that admits nobody: no tuple, but a
// policy, and explain says the server is protected and the client declares no call.
func TestProtectedWithoutIntents(t *testing.T) {
	ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"}, Spec: v2beta1.ProtectedServiceSpec{Name: "server"}}
	r := analyze(t, Options{}, append(tutorial.Objects(), ps)...)
	if len(r.Tuples) != 0 || len(r.Policies) != 1 {
		t.Fatalf("tuples %v, policies %d; want none and one", r.Tuples, len(r.Policies))
	}
	es, err := r.Explain(Query{From: Endpoint{Namespace: ns, Name: "client"}, To: Endpoint{Namespace: ns, Name: "server"}, Port: "80"})
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Verdict != Denied || len(es[0].Missing) != 1 || !strings.Contains(es[0].Missing[0], "declares no call") {
		t.Errorf("explanation %+v", es[0])
	}
}

// Pods whose identity no workload selector can stand for (here an annotation names it)
// are selected by the operator's labels: the analysis predicts those labels, and the
// verdicts are evaluated on the labelled pods, so the declared client is allowed and an
// undeclared pod with the same app label is not, even one with a stale operator label.
func TestPredictedLabelsDecideVerdicts(t *testing.T) {
	annotated := tutorial.Deployment(ns, "client-v2", 0)
	annotated.Spec.Template.Labels = map[string]string{"app": "client-v2"}
	pod := func(name, app string, annotations map[string]string) *corev1.Pod {
		yes := true
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, Labels: map[string]string{"app": app}, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "client-v2", Controller: &yes}},
		}}
	}
	// A pod that still carries the operator's label of another identity loses it.
	stale := pod("client-v2-c", "client-v2", nil)
	stale.Labels[compile.WorkloadLabel] = "client"
	objects := append(tutorial.Objects(), annotated,
		pod("client-v2-a", "client-v2", map[string]string{identity.WorkloadNameAnnotation: "client"}),
		pod("client-v2-b", "client-v2", nil),
		stale,
		clientIntents(ns, "client", service("server")))
	r := analyze(t, Options{}, objects...)
	if got := r.PodLabels[ns+"/client-v2-a"]; got == nil {
		t.Fatalf("no operator labels predicted for the annotated pod; all: %v", r.PodLabels)
	}
	if got := r.PodLabels[ns+"/client-v2-b"]; got != nil {
		t.Errorf("labels %v predicted for a pod of another identity", got)
	}
	to := Endpoint{Namespace: ns, Name: "server", Kind: "Service"}
	for from, want := range map[Endpoint]string{
		{Namespace: ns, Name: "client"}:                        Allowed,
		{Namespace: ns, Name: "client-v2", Kind: "Deployment"}: Denied,
		{Namespace: ns, Name: "client-other"}:                  Denied,
	} {
		es, err := r.Explain(Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 || es[0].Verdict != want || es[0].Port != "TCP/80" {
			t.Errorf("%s -> %s: %+v, want %s on TCP/80", from, to, es, want)
		}
	}
}

// Explanations name the chain for an allowed call, what is missing for a denied one,
// and the default when no policy selects the destination.
func TestExplainNetworkPolicy(t *testing.T) {
	r := analyze(t, Options{}, tutorialObjects(tutorial.Intents())...)
	client, other := Endpoint{Namespace: ns, Name: "client"}, Endpoint{Namespace: ns, Name: "client-other"}
	server := Endpoint{Namespace: ns, Name: "server"}
	for _, tc := range []struct {
		name        string
		q           Query
		verdict     string
		chain       string
		missing     string
		defaultCase bool
	}{
		{"declared", Query{From: client, To: server, Port: "80"}, Allowed, "ClientIntents " + ns + "/client declares service server." + ns, "", false},
		{"undeclared", Query{From: other, To: server, Port: "80"}, Denied, "selects the pods of server." + ns, "server." + ns + " is protected; client-other." + ns + " declares no call", false},
		{"wrong port", Query{From: client, To: server, Port: "TCP/9090"}, Denied, "access-to.service.server", "on TCP/80, not TCP/9090", false},
		{"no policy selects the client", Query{From: server, To: client, Port: "80"}, Allowed, "the cluster's default allows all ingress", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := r.Explain(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			e := es[0]
			if e.Verdict != tc.verdict || e.Default != tc.defaultCase || !strings.Contains(strings.Join(e.Chain, "\n"), tc.chain) || !strings.Contains(strings.Join(e.Missing, "\n"), tc.missing) {
				t.Errorf("explanation %+v", e)
			}
			if tc.verdict == Allowed && len(e.Missing) > 0 || tc.verdict == Denied && len(e.Missing) == 0 {
				t.Errorf("missing %v with verdict %s", e.Missing, e.Verdict)
			}
		})
	}
	if _, err := r.Explain(Query{From: client, To: Endpoint{Namespace: ns, Name: "nowhere"}, Port: "80"}); err == nil {
		t.Error("explaining a call to a workload without pods succeeded")
	}
}

func kafkaObjects(protected bool, intents ...*v2beta1.ClientIntents) []client.Object {
	required := true
	one := int32(1)
	out := []client.Object{
		&appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "kafka"},
			Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kafka"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "kafka"}}}},
		},
		&v2beta1.KafkaServerConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "kafka"},
			Spec: v2beta1.KafkaServerConfigSpec{
				Workload: v2beta1.Workload{Name: "kafka", Kind: "StatefulSet"},
				Addr:     "kafka.kafka:9092",
				Topics:   []v2beta1.KafkaServerTopic{{Topic: "*", ClientIdentityRequired: true, IntentsRequired: &required}},
			},
		},
	}
	if protected {
		out = append(out, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "kafka"}, Spec: v2beta1.ProtectedServiceSpec{Name: "kafka"}})
	}
	for _, ci := range intents {
		out = append(out, ci)
	}
	return out
}

func kafkaTarget(topics ...v2beta1.KafkaTopic) v2beta1.Target {
	return v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: "kafka.kafka", Topics: topics}}
}

func topic(name string, ops ...v2beta1.KafkaOperation) v2beta1.KafkaTopic {
	return v2beta1.KafkaTopic{Name: name, Operations: ops}
}

// Kafka tuples come from the compiled ACLs, attributed to the clients whose principal
// they name; explain checks every ACL a call needs, as the broker's authorizer would.
func TestKafka(t *testing.T) {
	shop := clientIntents("shop", "orders", kafkaTarget(topic("orders", "produce", "consume"), topic("audit*", "produce")))
	r := analyze(t, Options{}, kafkaObjects(true, shop)...)
	want := []string{
		"kafka shop/orders -> kafka/kafka[StatefulSet] audit* Write",
		"kafka shop/orders -> kafka/kafka[StatefulSet] orders Read",
		"kafka shop/orders -> kafka/kafka[StatefulSet] orders Write",
		"networkpolicy shop/orders -> kafka/kafka any",
	}
	if got := tupleStrings(r.Tuples); !slices.Equal(got, want) {
		t.Errorf("tuples\n%v\nwant\n%v", got, want)
	}
	orders, other := Endpoint{Namespace: "shop", Name: "orders"}, Endpoint{Namespace: "shop", Name: "billing"}
	broker := Endpoint{Namespace: "kafka", Name: "kafka"}
	for _, tc := range []struct {
		q       Query
		verdict string
		detail  string
	}{
		{Query{From: orders, To: broker, Topic: "orders", Operation: "consume"}, Allowed, `Allow User:CN=orders.shop`},
		{Query{From: orders, To: broker, Topic: "orders", Operation: "describe"}, Allowed, "Read on Literal Topic"},
		{Query{From: orders, To: broker, Topic: "audit-2026", Operation: "produce"}, Allowed, `Prefixed Topic "audit"`},
		{Query{From: orders, To: broker, Topic: "audit-2026", Operation: "consume"}, Denied, "declares orders produce,consume; audit* produce"},
		{Query{From: orders, To: broker, Topic: "payments", Operation: "produce"}, Denied, "not payments produce"},
		{Query{From: other, To: broker, Topic: "orders", Operation: "produce"}, Denied, "declares no Kafka call"},
	} {
		es, err := r.Explain(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(append(es[0].Chain, es[0].Missing...), "\n")
		if es[0].Verdict != tc.verdict || !strings.Contains(text, tc.detail) {
			t.Errorf("%s %s: %s\n%s\nwant %s with %q", tc.q.Topic, tc.q.Operation, es[0].Verdict, text, tc.verdict, tc.detail)
		}
	}
	if _, err := r.Explain(Query{From: orders, To: broker, Topic: "orders", Operation: "fly"}); err == nil {
		t.Error("an unknown operation is explained")
	}

	shadow := analyze(t, Options{Enforcement: enforcement.Options{Shadow: true}}, kafkaObjects(false, shop)...)
	if len(shadow.Brokers) != 1 || shadow.Brokers[0].Enforced || len(shadow.Brokers[0].ACLs) != 0 {
		t.Fatalf("shadow mode: %+v", shadow.Brokers)
	}
	es, err := shadow.Explain(Query{From: orders, To: broker, Topic: "orders", Operation: "produce"})
	if err != nil {
		t.Fatal(err)
	}
	if !es[0].Default || es[0].Verdict != Unknown {
		t.Errorf("shadow mode explanation %+v", es[0])
	}
}

// The authorizer's rules: a matching deny wins, Describe is implied by Read and Write,
// a prefix matches longer names, "*" literal matches every name, User:* every principal.
func TestAuthorize(t *testing.T) {
	p := "User:CN=a"
	topicACL := func(principal string, pattern acl.Pattern, name string, op acl.Operation, perm acl.Permission) acl.ACL {
		return acl.ACL{Principal: principal, Host: acl.AnyHost, Resource: acl.Topic, Pattern: pattern, Name: name, Operation: op, Permission: perm}
	}
	need := func(name string, op acl.Operation) acl.ACL { return topicACL(p, acl.Literal, name, op, acl.Allow) }
	for _, tc := range []struct {
		name      string
		held      []acl.ACL
		need      acl.ACL
		allowed   bool
		denyFound bool
	}{
		{"exact", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Read, acl.Allow)}, need("t", acl.Read), true, false},
		{"other topic", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Read, acl.Allow)}, need("u", acl.Read), false, false},
		{"other principal", []acl.ACL{topicACL("User:CN=b", acl.Literal, "t", acl.Read, acl.Allow)}, need("t", acl.Read), false, false},
		{"describe implied by write", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Write, acl.Allow)}, need("t", acl.Describe), true, false},
		{"write not implied by describe", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Describe, acl.Allow)}, need("t", acl.Write), false, false},
		{"all", []acl.ACL{topicACL(p, acl.Literal, "t", acl.All, acl.Allow)}, need("t", acl.Alter), true, false},
		{"prefix", []acl.ACL{topicACL(p, acl.Prefixed, "t-", acl.Read, acl.Allow)}, need("t-1", acl.Read), true, false},
		{"wildcard name and principal", []acl.ACL{topicACL(acl.Everyone, acl.Literal, "*", acl.Read, acl.Allow)}, need("t", acl.Read), true, false},
		{"deny wins", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Read, acl.Allow), topicACL(acl.Everyone, acl.Literal, "*", acl.All, acl.Deny)}, need("t", acl.Read), false, true},
		{"anonymous deny spares others", []acl.ACL{topicACL(p, acl.Literal, "t", acl.Read, acl.Allow), topicACL(acl.Anonymous, acl.Literal, "*", acl.All, acl.Deny)}, need("t", acl.Read), true, false},
	} {
		allow, deny := authorize(tc.held, tc.need)
		if (allow != nil && deny == nil) != tc.allowed || (deny != nil) != tc.denyFound {
			t.Errorf("%s: allow %v deny %v", tc.name, allow, deny)
		}
	}
}

// A change lists removed and added tuples and the writes: deletions first.
func TestDiff(t *testing.T) {
	base := analyze(t, Options{}, tutorialObjects(tutorial.Intents())...)
	next := analyze(t, Options{}, tutorialObjects(clientIntents(ns, "client", workload("server", "Deployment")), clientIntents(ns, "client-other", service("server")))...)
	c := Diff(base, next)
	if got, want := tupleStrings(c.Removed), []string{"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/80"}; !slices.Equal(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	if got, want := tupleStrings(c.Added), []string{
		"networkpolicy " + ns + "/client -> " + ns + "/server[Deployment] any",
		"networkpolicy " + ns + "/client-other -> " + ns + "/server[Service] TCP/80",
	}; !slices.Equal(got, want) {
		t.Errorf("added %v, want %v", got, want)
	}
	var writes []string
	for _, o := range c.Policies {
		writes = append(writes, o.Action+" "+o.Name)
	}
	if want := []string{"update access-to.service.server", "create access-to.deployment.server"}; !slices.Equal(writes, want) {
		t.Errorf("writes %v, want %v", writes, want)
	}
	if back := Diff(next, base); len(back.Removed) != 2 || len(back.Added) != 1 || back.Policies[0].Action != Delete {
		t.Errorf("reverse change %+v", back)
	}
	if same := Diff(base, base); !same.Empty() {
		t.Errorf("a state differs from itself: %+v", same)
	}
}

// Assertions hold or fail with the explanations that break them; a bad entry is refused.
func TestCheck(t *testing.T) {
	r := analyze(t, Options{}, tutorialObjects(tutorial.Intents())...)
	port := intstr.FromInt32(80)
	var e Expectations
	e.Expect.Allow = []Assertion{{From: "client." + ns, To: ns + "/server[Service]", Port: &port}, {From: "client-other." + ns, To: "server." + ns, Port: &port}}
	e.Expect.Deny = []Assertion{{From: "client-other." + ns, To: "server." + ns}, {From: "client." + ns, To: "server." + ns}}
	fails := r.Check(&e)
	var got []string
	for _, f := range fails {
		got = append(got, f.Want+" "+f.Assertion.From)
		if len(f.Explanations) == 0 {
			t.Errorf("failure %+v has no explanation", f)
		}
	}
	if want := []string{"allowed client-other." + ns, "denied client." + ns}; !slices.Equal(got, want) {
		t.Errorf("failures %v, want %v", got, want)
	}
}

// namedTargetPort returns the tutorial's objects with the Service's target port given
// by the server container's port name.
func namedTargetPort(name string, intents ...*v2beta1.ClientIntents) []client.Object {
	out := tutorialObjects(intents...)
	for i, o := range out {
		if svc, ok := o.(*corev1.Service); ok {
			svc = svc.DeepCopy()
			svc.Spec.Ports[0].TargetPort = intstr.FromString(name)
			out[i] = svc
		}
	}
	return out
}

// A named port in a policy grants access to the number the destination's pods give it:
// the tuple says both, and a Service switching between the name and the number changes
// no access.
func TestNamedPortTuples(t *testing.T) {
	named := analyze(t, Options{}, namedTargetPort("http", tutorial.Intents())...)
	if got, want := tupleStrings(named.Tuples), []string{"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/http (80)"}; !slices.Equal(got, want) {
		t.Errorf("tuples %v, want %v", got, want)
	}
	numbered := analyze(t, Options{}, tutorialObjects(tutorial.Intents())...)
	c := Diff(numbered, named)
	if len(c.Removed) != 0 || len(c.Added) != 0 {
		t.Errorf("the same container port, by number then by name: removed %v, added %v", tupleStrings(c.Removed), tupleStrings(c.Added))
	}
	if len(c.Policies) != 1 || c.Policies[0].Action != Update {
		t.Errorf("the policy is rewritten with the name: %+v", c.Policies)
	}
	unknown := analyze(t, Options{}, namedTargetPort("grpc", tutorial.Intents())...)
	if got, want := tupleStrings(unknown.Tuples), []string{"networkpolicy " + ns + "/client -> " + ns + "/server[Service] TCP/grpc"}; !slices.Equal(got, want) {
		t.Errorf("a name no container port has: tuples %v, want %v", got, want)
	}
	if c := Diff(numbered, unknown); len(c.Removed) != 1 || len(c.Added) != 1 {
		t.Errorf("a name no container port has is another access: %+v", c)
	}
}

// TestAnalyzeOneNamespace checks that Options.Namespace plans that namespace's servers
// only, as the full analysis does.
func TestAnalyzeOneNamespace(t *testing.T) {
	objects := tutorialObjects(tutorial.Intents(), clientIntents("other", "client", service("server")))
	objects = append(objects, tutorial.Deployment("other", "server", 80), tutorial.Deployment("other", "client", 0))
	full := analyze(t, Options{}, objects...)
	one := analyze(t, Options{Namespace: ns}, objects...)
	var want []string
	for _, p := range full.Plans {
		if p.Server.Namespace == ns {
			want = append(want, p.Server.String())
		}
	}
	var got []string
	for _, p := range one.Plans {
		got = append(got, p.Server.String())
	}
	if len(want) == 0 || len(full.Plans) == len(want) || !slices.Equal(got, want) {
		t.Errorf("plans of %s: %v; the full analysis has %v among %d", ns, got, want, len(full.Plans))
	}
	if len(one.Policies) != 1 || one.Policies[0].Namespace != ns {
		t.Errorf("policies: %v", one.Policies)
	}
}
