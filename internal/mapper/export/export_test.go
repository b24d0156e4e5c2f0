package export

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func wl(ns, name, kind string) edges.Peer {
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: ns, Name: name, WorkloadKind: kind}
}

func svc(ns, name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerService, Namespace: ns, Name: name}
}

func ext(name string) edges.Peer { return edges.Peer{Kind: edges.PeerExternal, Name: name} }

func node(name string) edges.Peer { return edges.Peer{Kind: edges.PeerNode, Name: name} }

func edge(client, server edges.Peer, port uint16) edges.Edge {
	return edges.Edge{Key: edges.Key{Client: client, Server: server, Port: port, Protocol: "TCP"},
		FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 3, Agents: []string{"node-1"}}
}

// specs renders the exported specs as "ns/name: workload -> targets" lines.
func specs(cis []v2beta1.ClientIntents) []string {
	var out []string
	for _, ci := range cis {
		var ts []string
		for _, t := range ci.Spec.Targets {
			s := TargetName(t)
			if t.Internet != nil && len(t.Internet.Ports) > 0 {
				raw, _ := json.Marshal(t.Internet.Ports)
				s += " " + string(raw)
			}
			ts = append(ts, s)
		}
		w := ci.Spec.Workload.Name
		if ci.Spec.Workload.Kind != "" {
			w = ci.Spec.Workload.Kind + ":" + w
		}
		out = append(out, ci.Namespace+"/"+ci.Name+": "+w+" -> "+strings.Join(ts, "; "))
	}
	return out
}

func TestExportShapes(t *testing.T) {
	web := wl("shop", "web", "Deployment")
	for _, tc := range []struct {
		name     string
		edges    []edges.Edge
		want     []string
		skipped  []string
		merged   []string
		internet int
	}{
		{
			name: "workload servers by name and kind, in and out of the namespace",
			edges: []edges.Edge{
				edge(web, wl("shop", "api", "Deployment"), 8080),
				edge(web, wl("shop", "api", "Deployment"), 9090),
				edge(web, wl("data", "db", "StatefulSet"), 5432),
			},
			want: []string{"shop/web: Deployment:web -> kubernetes Deployment:api; kubernetes StatefulSet:db.data"},
		},
		{
			name:  "a Service is a service target",
			edges: []edges.Edge{edge(web, svc("shop", "api"), 80), edge(web, svc("other", "search"), 80)},
			want:  []string{"shop/web: Deployment:web -> service api; service search.other"},
		},
		{
			name: "external hosts by name or address, with their ports",
			edges: []edges.Edge{
				edge(web, ext("api.example.com"), 443), edge(web, ext("api.example.com"), 80),
				edge(web, ext("192.0.2.7"), 25),
			},
			want:     []string{"shop/web: Deployment:web -> internet 192.0.2.7 [25]; internet api.example.com [80,443]"},
			internet: 2,
		},
		{
			name:  "an identity named by the annotation has no kind",
			edges: []edges.Edge{edge(wl("shop", "legacy", ""), wl("shop", "api", ""), 80)},
			want:  []string{"shop/legacy: legacy -> kubernetes api"},
		},
		{
			name: "two kinds of one name get a ClientIntents each",
			edges: []edges.Edge{
				edge(wl("shop", "job", "CronJob"), web, 80),
				edge(wl("shop", "job", "Deployment"), web, 80),
			},
			want: []string{"shop/job-cronjob: CronJob:job -> kubernetes Deployment:web", "shop/job-deployment: Deployment:job -> kubernetes Deployment:web"},
		},
		{
			name: "a name-kind that another workload holds",
			edges: []edges.Edge{
				edge(wl("shop", "job", "CronJob"), web, 80),
				edge(wl("shop", "job", "Deployment"), web, 80),
				edge(wl("shop", "job-cronjob", "Deployment"), web, 80),
			},
			want: []string{"shop/job-cronjob: CronJob:job -> kubernetes Deployment:web", "shop/job-cronjob-observed: Deployment:job-cronjob -> kubernetes Deployment:web", "shop/job-deployment: Deployment:job -> kubernetes Deployment:web"},
		},
		{
			name: "a kindless identity shares its name's ClientIntents",
			edges: []edges.Edge{
				edge(wl("shop", "job", ""), web, 80),
				edge(wl("shop", "job", "Deployment"), svc("shop", "api"), 80),
			},
			want:   []string{"shop/job: job -> kubernetes Deployment:web; service api"},
			merged: []string{"shop/job"},
		},
		{
			name: "what ClientIntents cannot name is skipped, saying why",
			edges: []edges.Edge{
				edge(node("node-1"), web, 80),
				edge(web, node("node-2"), 10250),
				edge(ext("203.0.113.9"), web, 80),
				edge(wl("", "orphan", "Pod"), web, 80),
				edge(wl("shop", "my.app", "Deployment"), web, 80),
				edge(web, wl("shop", "my.db", "Deployment"), 80),
				edge(web, ext("_sip.example.com"), 5060),
				edge(web, wl("shop", "api", "Deployment"), 80),
			},
			want: []string{"shop/web: Deployment:web -> kubernetes Deployment:api"},
			skipped: []string{
				"node/node-1 -> Deployment/shop/web TCP/80: the client is a process on node node-1's host network",
				"Deployment/shop/web -> node/node-2 TCP/10250: the server is node node-2's host network",
				"external/203.0.113.9 -> Deployment/shop/web TCP/80: the client is outside the cluster",
				"Pod//orphan -> Deployment/shop/web TCP/80: the client workload has no namespace",
				`Deployment/shop/my.app -> Deployment/shop/web TCP/80: the client's name "my.app" is not one`,
				`Deployment/shop/web -> Deployment/shop/my.db TCP/80: the server's name "my.db" cannot be a target's name`,
				`Deployment/shop/web -> external/_sip.example.com TCP/5060: the external server "_sip.example.com" is neither`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Export(tc.edges, Options{})
			if got := specs(res.Intents); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("intents:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if len(res.Skipped) != len(tc.skipped) {
				t.Fatalf("skipped %v, want %d", res.Skipped, len(tc.skipped))
			}
			for i, s := range res.Skipped {
				if !strings.HasPrefix(s.String(), tc.skipped[i]) {
					t.Errorf("skip %d: %q, want it to start with %q", i, s, tc.skipped[i])
				}
			}
			if !reflect.DeepEqual(res.Merged, tc.merged) || res.Internet != tc.internet {
				t.Errorf("merged %v, internet %d; want %v, %d", res.Merged, res.Internet, tc.merged, tc.internet)
			}
		})
	}
}

func TestEvidenceAnnotation(t *testing.T) {
	e := edge(wl("shop", "web", "Deployment"), wl("shop", "api", "Deployment"), 8080)
	e.DNSNames = []string{"api.shop.svc.cluster.local"}
	e.Count, e.Agents = 1204, []string{"node-1", "node-2"}
	res := Export([]edges.Edge{e, edge(wl("shop", "web", "Deployment"), svc("shop", "cart"), 80)}, Options{})
	if len(res.Intents) != 1 {
		t.Fatalf("got %d ClientIntents", len(res.Intents))
	}
	var got []Evidence
	if err := json.Unmarshal([]byte(res.Intents[0].Annotations[ObservedAnnotation]), &got); err != nil {
		t.Fatal(err)
	}
	want := []Evidence{
		{Target: "kubernetes Deployment:api", Port: "TCP/8080", DNSNames: e.DNSNames, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 1204, Agents: []string{"node-1", "node-2"}},
		{Target: "service cart", Port: "TCP/80", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 3, Agents: []string{"node-1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("evidence %+v, want %+v", got, want)
	}
}

func intentsOf(ns, name, kind string, targets ...v2beta1.Target) v2beta1.ClientIntents {
	return v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: name, Kind: kind}, Targets: targets}}
}

func TestDeclares(t *testing.T) {
	web := wl("shop", "web", "Deployment")
	k8s := func(name, kind string) v2beta1.Target {
		return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: kind}}
	}
	internet := func(domains, ips []string, ports ...int32) v2beta1.Target {
		return v2beta1.Target{Internet: &v2beta1.InternetTarget{Domains: domains, IPs: ips, Ports: ports}}
	}
	for _, tc := range []struct {
		name     string
		declared v2beta1.ClientIntents
		call     edges.Edge
		want     bool
	}{
		{"kubernetes target without kind", intentsOf("shop", "web", "", k8s("api", "")), edge(web, wl("shop", "api", "Deployment"), 80), true},
		{"kubernetes target of the server's kind", intentsOf("shop", "web", "Deployment", k8s("api", "Deployment")), edge(web, wl("shop", "api", "Deployment"), 80), true},
		{"kubernetes target of another kind", intentsOf("shop", "web", "", k8s("api", "StatefulSet")), edge(web, wl("shop", "api", "Deployment"), 80), false},
		{"ClientIntents of another client kind", intentsOf("shop", "web", "StatefulSet", k8s("api", "")), edge(web, wl("shop", "api", "Deployment"), 80), false},
		{"target in another namespace", intentsOf("shop", "web", "", k8s("api.data", "")), edge(web, wl("data", "api", "Deployment"), 80), true},
		{"same name, other namespace", intentsOf("shop", "web", "", k8s("api", "")), edge(web, wl("data", "api", "Deployment"), 80), false},
		{"kafka target is a call to the broker", intentsOf("shop", "web", "", v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: "kafka.kafka"}}), edge(web, wl("kafka", "kafka", "StatefulSet"), 9092), true},
		{"service target", intentsOf("shop", "web", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "api"}}), edge(web, svc("shop", "api"), 80), true},
		{"service target of another name", intentsOf("shop", "web", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "search"}}), edge(web, svc("shop", "api"), 80), false},
		{"service target in another namespace", intentsOf("shop", "web", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "api.data"}}), edge(web, svc("shop", "api"), 80), false},
		{"kubernetes target of another name", intentsOf("shop", "web", "", k8s("db", "")), edge(web, wl("shop", "api", "Deployment"), 80), false},
		{"ClientIntents of another workload", intentsOf("shop", "cart", "", k8s("api", "")), edge(web, wl("shop", "api", "Deployment"), 80), false},
		{"ClientIntents in another namespace", intentsOf("data", "web", "", k8s("api.shop", "")), edge(web, wl("shop", "api", "Deployment"), 80), false},
		{"internet domain of another host", intentsOf("shop", "web", "", internet([]string{"cdn.example.com"}, nil)), edge(web, ext("api.example.com"), 443), false},
		{"internet CIDR not holding the address", intentsOf("shop", "web", "", internet(nil, []string{"192.0.2.0/28"})), edge(web, ext("192.0.2.77"), 25), false},
		{"workload target does not declare the Service", intentsOf("shop", "web", "", k8s("api", "")), edge(web, svc("shop", "api"), 80), false},
		{"internet domain", intentsOf("shop", "web", "", internet([]string{"API.example.com."}, nil)), edge(web, ext("api.example.com"), 443), true},
		{"internet wildcard", intentsOf("shop", "web", "", internet([]string{"*.example.com"}, nil)), edge(web, ext("api.eu.example.com"), 443), true},
		{"internet wildcard is not the apex", intentsOf("shop", "web", "", internet([]string{"*.example.com"}, nil)), edge(web, ext("example.com"), 443), false},
		{"internet CIDR", intentsOf("shop", "web", "", internet(nil, []string{"192.0.2.0/24"})), edge(web, ext("192.0.2.7"), 25), true},
		{"internet address", intentsOf("shop", "web", "", internet(nil, []string{"2001:db8::1"})), edge(web, ext("2001:db8::1"), 25), true},
		{"internet port not declared", intentsOf("shop", "web", "", internet([]string{"api.example.com"}, nil, 80)), edge(web, ext("api.example.com"), 443), false},
		{"internet port declared", intentsOf("shop", "web", "", internet([]string{"api.example.com"}, nil, 80, 443)), edge(web, ext("api.example.com"), 443), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Declares([]v2beta1.ClientIntents{tc.declared}, tc.call.Key); got != tc.want {
				t.Errorf("Declares = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDeltaLeavesOutDeclaredClients(t *testing.T) {
	web, cart := wl("shop", "web", "Deployment"), wl("shop", "cart", "Deployment")
	es := []edges.Edge{
		edge(web, wl("shop", "api", "Deployment"), 80),
		edge(web, svc("shop", "search"), 80),
		edge(cart, wl("shop", "api", "Deployment"), 80),
	}
	declared := []v2beta1.ClientIntents{
		intentsOf("shop", "web", "", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "api"}}),
		intentsOf("shop", "cart", "Deployment", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "api"}}),
	}
	res := Export(es, Options{Declared: declared})
	if got, want := specs(res.Intents), []string{"shop/web: web -> kubernetes api; service search"}; !reflect.DeepEqual(got, want) {
		t.Errorf("delta %v, want %v", got, want)
	}
	if want := []Extension{{Intents: "shop/web", Kept: 1, Added: 1}}; !reflect.DeepEqual(res.Extended, want) {
		t.Errorf("extended %+v, want %+v", res.Extended, want)
	}
	var ev []Evidence
	if err := json.Unmarshal([]byte(res.Intents[0].Annotations[ObservedAnnotation]), &ev); err != nil || len(ev) != 1 || ev[0].Target != "service search" {
		t.Errorf("evidence of the added call: %+v %v", ev, err)
	}
	if res.AlreadyDeclared != 2 {
		t.Errorf("already declared %d, want 2", res.AlreadyDeclared)
	}
}

func TestDeltaReplacesNoOtherWorkloadsIntents(t *testing.T) {
	declared := []v2beta1.ClientIntents{intentsOf("shop", "web", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "api"}})}
	declared[0].Spec.Workload.Name = "frontend"
	res := Export([]edges.Edge{edge(wl("shop", "web", "Deployment"), svc("shop", "api"), 80)}, Options{Declared: declared})
	if got, want := specs(res.Intents), []string{"shop/web-observed: Deployment:web -> service api"}; !reflect.DeepEqual(got, want) || len(res.Extended) != 0 {
		t.Errorf("got %v (extended %v), want %v", got, res.Extended, want)
	}
}

func TestEveryVersionConvertsBackToTheExport(t *testing.T) {
	res := Export([]edges.Edge{
		edge(wl("shop", "web", "Deployment"), wl("shop", "api", "Deployment"), 80),
		edge(wl("shop", "web", "Deployment"), svc("data", "db"), 5432),
		edge(wl("shop", "web", "Deployment"), ext("api.example.com"), 443),
	}, Options{})
	ci := &res.Intents[0]
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			obj, err := InVersion(ci, v)
			if err != nil {
				t.Fatal(err)
			}
			if got := obj.GetObjectKind().GroupVersionKind().Version; got != v {
				t.Fatalf("version %q", got)
			}
			doc, err := Manifest(obj)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(doc), "status:") || strings.Contains(string(doc), "creationTimestamp") {
				t.Errorf("manifest holds what the API server sets:\n%s", doc)
			}
			back := &v2beta1.ClientIntents{}
			if c, ok := obj.(conversion.Convertible); ok {
				if err := c.ConvertTo(back); err != nil {
					t.Fatal(err)
				}
			} else if err := yaml.Unmarshal(doc, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Spec, ci.Spec) || back.Annotations[ObservedAnnotation] != ci.Annotations[ObservedAnnotation] {
				t.Errorf("read back as %+v, want %+v", back.Spec, ci.Spec)
			}
		})
	}
	if _, err := InVersion(ci, "v3"); err == nil || !strings.Contains(err.Error(), "v2beta1, v2alpha1") {
		t.Errorf("unknown version: %v", err)
	}
}

// TestBounds: an internet target lists at most 64 ports, and the evidence annotation
// holds at most MaxEvidence calls, saying so.
func TestBounds(t *testing.T) {
	web := wl("shop", "web", "Deployment")
	var es []edges.Edge
	for p := range 70 {
		es = append(es, edge(web, ext("api.example.com"), uint16(1000+p)))
	}
	res := Export(es, Options{})
	if got := len(res.Intents[0].Spec.Targets); got != 2 || res.Internet != 2 {
		t.Fatalf("70 ports in %d targets (%d internet), want 2", got, res.Internet)
	}
	for _, tgt := range res.Intents[0].Spec.Targets {
		if n := len(tgt.Internet.Ports); n > maxInternetPorts {
			t.Errorf("an internet target with %d ports", n)
		}
	}
	if !Declares(res.Intents, es[69].Key) || len(res.Omitted) != 0 {
		t.Errorf("the 70th port: declared %v, omitted %v", Declares(res.Intents, es[69].Key), res.Omitted)
	}

	es = nil
	for i := range MaxEvidence + 10 {
		es = append(es, edge(web, wl("shop", "s"+strconv.Itoa(i), "Deployment"), 80))
	}
	res = Export(es, Options{})
	var ev []Evidence
	if err := json.Unmarshal([]byte(res.Intents[0].Annotations[ObservedAnnotation]), &ev); err != nil || len(ev) != MaxEvidence {
		t.Fatalf("%d calls of evidence (%v), want %d", len(ev), err, MaxEvidence)
	}
	if len(res.Omitted) != 1 || !strings.Contains(res.Omitted[0], "shop/web: the evidence of 10 calls") {
		t.Errorf("omitted %v", res.Omitted)
	}
	if len(res.Intents[0].Spec.Targets) != MaxEvidence+10 {
		t.Errorf("%d targets, want every call", len(res.Intents[0].Spec.Targets))
	}
}
