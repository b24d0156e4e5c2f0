package compile

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
)

// matchLabels is a selector on the given key, value pairs.
func matchLabels(kv ...string) *metav1.LabelSelector {
	if len(kv)%2 != 0 {
		panic("matchLabels needs key, value pairs")
	}
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// deploymentServer is the server "Deployment:name.namespace" of an intents file.
func deploymentServer(namespace, name string) intent.Server {
	return intent.Server{Ref: intent.Ref{Namespace: namespace, Name: name, Kind: "Deployment"}}
}

// serviceServer is the server "service name.namespace" of an intents file.
func serviceServer(namespace, name string) intent.Server {
	return intent.Server{Ref: intent.Ref{Namespace: namespace, Name: name}, Service: true}
}

// deploymentClient is a client Deployment whose pods the selector picks.
func deploymentClient(namespace, name string, pods *metav1.LabelSelector) Client {
	return Client{Ref: intent.Ref{Namespace: namespace, Name: name, Kind: "Deployment"}, Pods: pods}
}

// admit is the peer a policy must contain for pods of a client in namespace.
func admit(namespace string, pods *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: matchLabels("kubernetes.io/metadata.name", namespace),
		PodSelector:       pods,
	}
}

// port is a policy port; an empty protocol stays unset.
func port(protocol corev1.Protocol, p intstr.IntOrString) networkingv1.NetworkPolicyPort {
	out := networkingv1.NetworkPolicyPort{Port: &p}
	if protocol != "" {
		out.Protocol = &protocol
	}
	return out
}

// tcp is a TCP policy port by number.
func tcp(n int32) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolTCP, intstr.FromInt32(n))
}

// udp is a UDP policy port by number.
func udp(n int32) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolUDP, intstr.FromInt32(n))
}

// tcpNamed is a TCP policy port by container port name.
func tcpNamed(name string) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolTCP, intstr.FromString(name))
}

// dnsRule is the rule that keeps cluster DNS reachable by every pod.
func dnsRule() networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{udp(53), tcp(53)}}
}

// toJSON marshals v or fails the test.
func toJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// canonicalRules renders rules as JSON with peers and ports sorted, so that comparisons
// are about content, not order (order is covered by the determinism test).
func canonicalRules(t testing.TB, rules []networkingv1.NetworkPolicyIngressRule) string {
	t.Helper()
	type rule struct{ From, Ports []string }
	out := make([]rule, 0, len(rules))
	for _, r := range rules {
		var cr rule
		for _, p := range r.From {
			cr.From = append(cr.From, toJSON(t, p))
		}
		for _, p := range r.Ports {
			cr.Ports = append(cr.Ports, toJSON(t, p))
		}
		sort.Strings(cr.From)
		sort.Strings(cr.Ports)
		out = append(out, cr)
	}
	return toJSON(t, out)
}

func TestCompileAdmitsExactlyTheDeclaredClients(t *testing.T) {
	frontend := matchLabels("app", "frontend")
	checkout := matchLabels("app", "checkout", "tier", "web")
	tests := []struct {
		name      string
		in        Input
		wantRules []networkingv1.NetworkPolicyIngressRule
	}{
		{
			name: "a client in the server's namespace is admitted by namespace name and pod selector",
			in: Input{
				Server:  deploymentServer("shop", "cart"),
				Pods:    matchLabels("app", "cart"),
				Clients: []Client{deploymentClient("shop", "frontend", frontend)},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{admit("shop", frontend)}}},
		},
		{
			name: "a client in another namespace is admitted only from its own namespace",
			in: Input{
				Server:  deploymentServer("payments", "ledger"),
				Pods:    matchLabels("app", "ledger"),
				Clients: []Client{deploymentClient("shop", "checkout", checkout)},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{admit("shop", checkout)}}},
		},
		{
			name: "clients of the same and of other namespaces share one rule",
			in: Input{
				Server: deploymentServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
				Clients: []Client{
					deploymentClient("shop", "frontend", frontend),
					deploymentClient("mobile", "frontend", frontend),
					deploymentClient("shop", "checkout", checkout),
				},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				admit("shop", frontend), admit("mobile", frontend), admit("shop", checkout),
			}}},
		},
		{
			name: "a client declared twice is admitted once",
			in: Input{
				Server: deploymentServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
				Clients: []Client{
					deploymentClient("shop", "frontend", frontend),
					{Ref: intent.Ref{Namespace: "shop", Name: "frontend"}, Pods: matchLabels("app", "frontend")},
				},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{admit("shop", frontend)}}},
		},
		{
			name: "a server without clients denies all ingress",
			in: Input{
				Server: deploymentServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
			},
			wantRules: nil,
		},
		{
			name: "a client with a nil selector is skipped rather than admitting its whole namespace",
			in: Input{
				Server:  deploymentServer("shop", "cart"),
				Pods:    matchLabels("app", "cart"),
				Clients: []Client{{Ref: intent.Ref{Namespace: "shop", Name: "ghost"}}},
			},
			wantRules: nil,
		},
		{
			name: "a client with an empty selector is skipped, the others are kept",
			in: Input{
				Server: deploymentServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
				Clients: []Client{
					{Ref: intent.Ref{Namespace: "shop", Name: "ghost"}, Pods: &metav1.LabelSelector{}},
					{Ref: intent.Ref{Namespace: "shop", Name: "ghost2"}, Pods: &metav1.LabelSelector{MatchLabels: map[string]string{}}},
					deploymentClient("shop", "frontend", frontend),
				},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{admit("shop", frontend)}}},
		},
		{
			name: "a client selected by match expressions only is admitted",
			in: Input{
				Server: deploymentServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
				Clients: []Client{deploymentClient("shop", "batch", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"batch"}},
				}})},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{admit("shop", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"batch"}},
			}})}}},
		},
		{
			name: "ports limit the clients' rule; a missing protocol means TCP and duplicates go",
			in: Input{
				Server:  serviceServer("shop", "cart"),
				Pods:    matchLabels("app", "cart"),
				Ports:   []networkingv1.NetworkPolicyPort{port("", intstr.FromInt32(8080)), tcp(8080), tcpNamed("metrics"), udp(5353)},
				Clients: []Client{deploymentClient("shop", "frontend", frontend)},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{admit("shop", frontend)},
				Ports: []networkingv1.NetworkPolicyPort{tcp(8080), tcpNamed("metrics"), udp(5353)},
			}},
		},
		{
			name: "ports without clients still deny all",
			in: Input{
				Server: serviceServer("shop", "cart"),
				Pods:   matchLabels("app", "cart"),
				Ports:  []networkingv1.NetworkPolicyPort{tcp(8080)},
			},
			wantRules: nil,
		},
		{
			name: "a DNS server keeps its DNS ports open to everyone, even without clients",
			in: Input{
				Server:   deploymentServer("kube-system", "coredns"),
				Pods:     matchLabels("k8s-app", "kube-dns"),
				DNSPorts: dnsRule().Ports,
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{dnsRule()},
		},
		{
			name: "the DNS ports stay open beside the declared clients",
			in: Input{
				Server:   serviceServer("kube-system", "kube-dns"),
				Pods:     matchLabels("k8s-app", "kube-dns"),
				Ports:    []networkingv1.NetworkPolicyPort{tcp(9153)},
				Clients:  []Client{deploymentClient("monitoring", "prometheus", matchLabels("app", "prometheus"))},
				DNSPorts: []networkingv1.NetworkPolicyPort{tcp(53), udp(53)},
			},
			wantRules: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{admit("monitoring", matchLabels("app", "prometheus"))}, Ports: []networkingv1.NetworkPolicyPort{tcp(9153)}},
				dnsRule(),
			},
		},
		{
			name: "without DNS ports a server is an ordinary server",
			in: Input{
				Server: deploymentServer("default", "coredns"),
				Pods:   matchLabels("k8s-app", "kube-dns"),
			},
			wantRules: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compile(tc.in)
			if got == nil {
				t.Fatal("Compile returned nil, want a policy")
			}
			if !reflect.DeepEqual(got.Spec.PodSelector, *tc.in.Pods) {
				t.Errorf("podSelector = %s, want the server's pods %s", toJSON(t, got.Spec.PodSelector), toJSON(t, tc.in.Pods))
			}
			if !reflect.DeepEqual(got.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policyTypes = %v, want [Ingress] only", got.Spec.PolicyTypes)
			}
			if len(got.Spec.Egress) != 0 {
				t.Errorf("egress rules = %v, want none", got.Spec.Egress)
			}
			if g, w := canonicalRules(t, got.Spec.Ingress), canonicalRules(t, tc.wantRules); g != w {
				t.Errorf("ingress rules\n got: %s\nwant: %s", g, w)
			}
			assertNeverAdmitsWholeNamespace(t, got)
		})
	}
}

// assertNeverAdmitsWholeNamespace fails when a peer of the policy admits more than the pods
// of one namespace picked by a non-empty selector.
func assertNeverAdmitsWholeNamespace(t *testing.T, p *networkingv1.NetworkPolicy) {
	t.Helper()
	for _, r := range p.Spec.Ingress {
		for _, peer := range r.From {
			if isEmpty(peer.PodSelector) {
				t.Errorf("peer %s admits every pod of a namespace", toJSON(t, peer))
			}
			if peer.NamespaceSelector == nil || len(peer.NamespaceSelector.MatchLabels) != 1 || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "" {
				t.Errorf("peer %s does not name exactly one namespace", toJSON(t, peer))
			}
			if peer.IPBlock != nil {
				t.Errorf("peer %s admits an IP block", toJSON(t, peer))
			}
		}
	}
}

func TestCompileWithNothingToSelectReturnsNoPolicy(t *testing.T) {
	for name, pods := range map[string]*metav1.LabelSelector{
		"nil selector (server does not exist)": nil,
		"empty selector":                       {},
		"empty match labels":                   {MatchLabels: map[string]string{}},
		"empty match expressions":              {MatchExpressions: []metav1.LabelSelectorRequirement{}},
	} {
		t.Run(name, func(t *testing.T) {
			in := Input{
				Server:  deploymentServer("shop", "cart"),
				Pods:    pods,
				Clients: []Client{deploymentClient("shop", "frontend", matchLabels("app", "frontend"))},
			}
			if got := Compile(in); got != nil {
				t.Errorf("Compile = %s, want nil: an empty podSelector would protect every pod of the namespace", toJSON(t, got))
			}
		})
	}
}

func TestCompileLabelsThePolicyAsOwnedAndFindable(t *testing.T) {
	servers := []intent.Server{
		deploymentServer("shop", "cart"),
		{Ref: intent.Ref{Namespace: "shop", Name: "cart"}},
		{Ref: intent.Ref{Namespace: "shop", Name: "cart", Kind: "StatefulSet"}},
		serviceServer("shop", "cart"),
		serviceServer("other", "cart"),
	}
	names := map[string]intent.Server{}
	hashes := map[string]intent.Server{}
	for _, s := range servers {
		t.Run(s.String(), func(t *testing.T) {
			p := Compile(Input{Server: s, Pods: matchLabels("app", "cart")})
			if p.APIVersion != "networking.k8s.io/v1" || p.Kind != "NetworkPolicy" {
				t.Errorf("type = %s %s, want networking.k8s.io/v1 NetworkPolicy", p.APIVersion, p.Kind)
			}
			if p.Namespace != s.Namespace || p.Name != PolicyName(s) {
				t.Errorf("policy %s/%s, want %s/%s", p.Namespace, p.Name, s.Namespace, PolicyName(s))
			}
			if got := p.Labels[ownership.Label]; got != ownership.IntentsOperator {
				t.Errorf("label %s = %q, want %q", ownership.Label, got, ownership.IntentsOperator)
			}
			if got := p.Labels[ServerLabel]; got != s.Hash() {
				t.Errorf("label %s = %q, want the server hash %q", ServerLabel, got, s.Hash())
			}
			if got := p.Annotations[ServerAnnotation]; got != s.Key() {
				t.Errorf("annotation %s = %q, want the server key %q", ServerAnnotation, got, s.Key())
			}
			back, err := intent.ParseKey(p.Namespace, p.Annotations[ServerAnnotation])
			if err != nil || back != s {
				t.Errorf("annotation parses back to %v (%v), want %v", back, err, s)
			}
			for k, v := range p.Labels {
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
					t.Errorf("label %s=%q is not a valid label value: %v", k, v, errs)
				}
			}
			if prev, ok := names[p.Namespace+"/"+p.Name]; ok {
				t.Errorf("servers %v and %v share the policy name %s", prev, s, p.Name)
			}
			names[p.Namespace+"/"+p.Name] = s
			if prev, ok := hashes[p.Labels[ServerLabel]]; ok {
				t.Errorf("servers %v and %v share the server label %s", prev, s, p.Labels[ServerLabel])
			}
			hashes[p.Labels[ServerLabel]] = s
		})
	}
}

func TestCompileNamesThePolicyValidlyForLongServerNames(t *testing.T) {
	// Target names may be up to 253 characters of [a-z0-9-]; the policy name must still be
	// a valid object name (a DNS subdomain of at most 253 characters).
	var bad []string
	for _, kind := range []string{"", "Deployment", "StatefulSet"} {
		for n := 200; n <= 253; n++ {
			for _, dashAt := range []int{-1, n / 2, 218, 219, 229} {
				if dashAt >= n-1 {
					continue
				}
				name := []byte(strings.Repeat("a", n))
				if dashAt > 0 {
					name[dashAt] = '-'
				}
				s := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: string(name), Kind: kind}}
				p := Compile(Input{Server: s, Pods: matchLabels("app", "x")})
				if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
					bad = append(bad, p.Name)
				}
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("invalid policy names: %d cases, e.g. %q", len(bad), bad[0])
	}
}

func TestServicePortsAreThePodPortsTheServiceForwardsTo(t *testing.T) {
	tests := []struct {
		name  string
		ports []corev1.ServicePort
		want  []networkingv1.NetworkPolicyPort
	}{
		{
			name:  "numeric targetPort",
			ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			want:  []networkingv1.NetworkPolicyPort{tcp(8080)},
		},
		{
			name:  "named targetPort",
			ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
			want:  []networkingv1.NetworkPolicyPort{tcpNamed("http")},
		},
		{
			name:  "unset targetPort means the service port",
			ports: []corev1.ServicePort{{Port: 443}},
			want:  []networkingv1.NetworkPolicyPort{tcp(443)},
		},
		{
			name:  "UDP keeps its protocol",
			ports: []corev1.ServicePort{{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(5353), Protocol: corev1.ProtocolUDP}},
			want:  []networkingv1.NetworkPolicyPort{udp(5353)},
		},
		{
			name: "several ports, in order",
			ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("web")},
				{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP},
				{Name: "sctp", Port: 3868, TargetPort: intstr.FromInt32(3869), Protocol: corev1.ProtocolSCTP},
			},
			want: []networkingv1.NetworkPolicyPort{tcpNamed("web"), tcp(9090), port(corev1.ProtocolSCTP, intstr.FromInt32(3869))},
		},
		{
			name: "a Service without ports forwards nothing",
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: tc.ports}}
			got := ServicePorts(svc)
			if g, w := toJSON(t, got), toJSON(t, tc.want); g != w {
				t.Errorf("ServicePorts\n got: %s\nwant: %s", g, w)
			}
		})
	}
}

func TestCompileWithServicePortsRestrictsClientsToTheTargetPorts(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		{Name: "http-alt", Port: 8080, TargetPort: intstr.FromString("http")},
		{Name: "admin", Port: 9000},
		{Name: "syslog", Port: 514, TargetPort: intstr.FromInt32(5514), Protocol: corev1.ProtocolUDP},
	}}}
	frontend := matchLabels("app", "frontend")
	p := Compile(Input{
		Server:  serviceServer("shop", "cart"),
		Pods:    matchLabels("app", "cart"),
		Ports:   ServicePorts(svc),
		Clients: []Client{deploymentClient("shop", "frontend", frontend)},
	})
	want := []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{admit("shop", frontend)},
		Ports: []networkingv1.NetworkPolicyPort{tcpNamed("http"), tcp(9000), udp(5514)},
	}}
	if g, w := canonicalRules(t, p.Spec.Ingress), canonicalRules(t, want); g != w {
		t.Errorf("ingress rules\n got: %s\nwant: %s", g, w)
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	in := Input{
		Server: serviceServer("shop", "cart"),
		Pods:   matchLabels("app", "cart"),
		Ports: []networkingv1.NetworkPolicyPort{
			tcp(8080), tcp(443), tcpNamed("http"), udp(53), udp(5353), port("", intstr.FromInt32(9000)),
			port(corev1.ProtocolSCTP, intstr.FromInt32(3868)), tcp(8080),
		},
		Clients: []Client{
			deploymentClient("shop", "frontend", matchLabels("app", "frontend")),
			deploymentClient("mobile", "frontend", matchLabels("app", "frontend")),
			deploymentClient("shop", "checkout", matchLabels("app", "checkout", "tier", "web")),
			{Ref: intent.Ref{Namespace: "shop", Name: "worker"}, Pods: ByLabel(intent.Ref{Namespace: "shop", Name: "worker"}).Selector},
			{Ref: intent.Ref{Namespace: "batch", Name: "report", Kind: "CronJob"}, Pods: ByLabel(intent.Ref{Namespace: "batch", Name: "report", Kind: "CronJob"}).Selector},
			{Ref: intent.Ref{Namespace: "shop", Name: "nobody"}},
			deploymentClient("shop", "frontend", matchLabels("app", "frontend")),
		},
	}
	want := toJSON(t, Compile(in))
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 200; i++ {
		shuffled := in
		shuffled.Clients = append([]Client(nil), in.Clients...)
		shuffled.Ports = append([]networkingv1.NetworkPolicyPort(nil), in.Ports...)
		r.Shuffle(len(shuffled.Clients), func(a, b int) { shuffled.Clients[a], shuffled.Clients[b] = shuffled.Clients[b], shuffled.Clients[a] })
		r.Shuffle(len(shuffled.Ports), func(a, b int) { shuffled.Ports[a], shuffled.Ports[b] = shuffled.Ports[b], shuffled.Ports[a] })
		if got := toJSON(t, Compile(shuffled)); got != want {
			t.Fatalf("shuffle %d compiles differently\n got: %s\nwant: %s", i, got, want)
		}
	}
}

func TestCompileKeepsPortRanges(t *testing.T) {
	end := int32(8100)
	single := tcp(8000)
	rng := tcp(8000)
	rng.EndPort = &end
	a := Compile(Input{Server: serviceServer("shop", "cart"), Pods: matchLabels("app", "cart"),
		Ports: []networkingv1.NetworkPolicyPort{single, rng}, Clients: []Client{deploymentClient("shop", "frontend", matchLabels("app", "frontend"))}})
	b := Compile(Input{Server: serviceServer("shop", "cart"), Pods: matchLabels("app", "cart"),
		Ports: []networkingv1.NetworkPolicyPort{rng, single}, Clients: []Client{deploymentClient("shop", "frontend", matchLabels("app", "frontend"))}})
	rangeKept := func(p *networkingv1.NetworkPolicy) bool {
		for _, pp := range p.Spec.Ingress[0].Ports {
			if pp.EndPort != nil && *pp.EndPort == end {
				return true
			}
		}
		return false
	}
	if !rangeKept(a) || !rangeKept(b) || toJSON(t, a) != toJSON(t, b) {
		t.Fatalf("ports [TCP 8000, TCP 8000-8100] compile to %s, in the other order to %s: the range must survive, in any order",
			toJSON(t, a.Spec.Ingress[0].Ports), toJSON(t, b.Spec.Ingress[0].Ports))
	}
}

func TestCompileDoesNotShareStateWithItsInput(t *testing.T) {
	in := Input{
		Server:  serviceServer("shop", "cart"),
		Pods:    matchLabels("app", "cart"),
		Ports:   []networkingv1.NetworkPolicyPort{tcp(8080)},
		Clients: []Client{deploymentClient("shop", "frontend", matchLabels("app", "frontend"))},
	}
	p := Compile(in)
	before := toJSON(t, p)
	in.Pods.MatchLabels["app"] = "changed"
	in.Clients[0].Pods.MatchLabels["app"] = "changed"
	in.Ports[0].Port.IntVal = 1
	*in.Ports[0].Protocol = corev1.ProtocolUDP
	if after := toJSON(t, p); after != before {
		t.Errorf("changing the input changed the policy\nbefore: %s\n after: %s", before, after)
	}
}

func TestUpToDate(t *testing.T) {
	desired := func() *networkingv1.NetworkPolicy {
		return Compile(Input{
			Server:  deploymentServer("shop", "cart"),
			Pods:    matchLabels("app", "cart"),
			Ports:   []networkingv1.NetworkPolicyPort{tcp(8080)},
			Clients: []Client{deploymentClient("shop", "frontend", matchLabels("app", "frontend"))},
		})
	}
	tests := []struct {
		name   string
		change func(existing *networkingv1.NetworkPolicy)
		want   bool
	}{
		{name: "identical", change: func(*networkingv1.NetworkPolicy) {}, want: true},
		{name: "as read back from the API server", change: func(e *networkingv1.NetworkPolicy) {
			b, _ := json.Marshal(e)
			*e = networkingv1.NetworkPolicy{}
			_ = json.Unmarshal(b, e)
			e.ResourceVersion, e.UID, e.Generation = "42", "uid-1", 3
		}, want: true},
		{name: "extra labels and annotations from other tools are fine", change: func(e *networkingv1.NetworkPolicy) {
			e.Labels["team"] = "payments"
			e.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
		}, want: true},
		{name: "another client admitted", change: func(e *networkingv1.NetworkPolicy) {
			e.Spec.Ingress[0].From = append(e.Spec.Ingress[0].From, admit("shop", matchLabels("app", "debug")))
		}, want: false},
		{name: "pod selector differs", change: func(e *networkingv1.NetworkPolicy) {
			e.Spec.PodSelector = *matchLabels("app", "cart", "version", "v2")
		}, want: false},
		{name: "ports differ", change: func(e *networkingv1.NetworkPolicy) {
			e.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{tcp(9090)}
		}, want: false},
		{name: "egress added by hand", change: func(e *networkingv1.NetworkPolicy) {
			e.Spec.PolicyTypes = append(e.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}, want: false},
		{name: "server label differs", change: func(e *networkingv1.NetworkPolicy) {
			e.Labels[ServerLabel] = "0000"
		}, want: false},
		{name: "managed-by label missing", change: func(e *networkingv1.NetworkPolicy) {
			delete(e.Labels, ownership.Label)
		}, want: false},
		{name: "no labels at all", change: func(e *networkingv1.NetworkPolicy) {
			e.Labels = nil
		}, want: false},
		{name: "server annotation differs", change: func(e *networkingv1.NetworkPolicy) {
			e.Annotations[ServerAnnotation] = "workload/Deployment/other"
		}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			existing := desired()
			tc.change(existing)
			if got := UpToDate(desired(), existing); got != tc.want {
				t.Errorf("UpToDate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClusterDNSPorts(t *testing.T) {
	dnsSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"k8s-app": "kube-dns"},
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(5353), Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromString("dns-tcp"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	fromService := []networkingv1.NetworkPolicyPort{udp(5353), tcpNamed("dns-tcp")}
	dnsPod := map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "abc"}
	other := map[string]string{"app": "metrics"}
	tests := []struct {
		name string
		dns  ClusterDNS
		s    intent.Server
		pods []map[string]string
		want []networkingv1.NetworkPolicyPort
	}{
		{"the DNS Service itself takes its target ports", ClusterDNS{dnsSvc}, serviceServer("kube-system", "kube-dns"), nil, fromService},
		{"a workload whose pods are DNS pods, whatever its name", ClusterDNS{dnsSvc}, deploymentServer("kube-system", "my-resolver"), []map[string]string{other, dnsPod}, fromService},
		{"a workload without DNS pods", ClusterDNS{dnsSvc}, deploymentServer("kube-system", "metrics"), []map[string]string{other}, nil},
		{"DNS pods' labels outside kube-system", ClusterDNS{dnsSvc}, deploymentServer("default", "coredns"), []map[string]string{dnsPod}, nil},
		{"no DNS Service: coredns by name keeps 53", ClusterDNS{}, deploymentServer("kube-system", "coredns"), nil, dnsRule().Ports},
		{"no DNS Service: another name is ordinary", ClusterDNS{}, deploymentServer("kube-system", "metrics"), []map[string]string{dnsPod}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.dns.PortsFor(tc.s, tc.pods)
			if toJSON(t, got) != toJSON(t, tc.want) {
				t.Errorf("got %s, want %s", toJSON(t, got), toJSON(t, tc.want))
			}
		})
	}
}
