package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	whconversion "sigs.k8s.io/controller-runtime/pkg/webhook/conversion"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/api/v1alpha2"
	"github.com/intentguard/intentguard/api/v1alpha3"
	"github.com/intentguard/intentguard/api/v1beta1"
	"github.com/intentguard/intentguard/api/v2alpha1"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// spoke is a ClientIntents version other than the hub.
type spoke interface {
	runtime.Object
	conversion.Convertible
}

// spokes returns an empty ClientIntents of every non-hub version.
func spokes() map[string]func() spoke {
	return map[string]func() spoke{
		"v1alpha2": func() spoke { return &v1alpha2.ClientIntents{} },
		"v1alpha3": func() spoke { return &v1alpha3.ClientIntents{} },
		"v1beta1":  func() spoke { return &v1beta1.ClientIntents{} },
		"v2alpha1": func() spoke { return &v2alpha1.ClientIntents{} },
	}
}

func decode(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("decoding %T: %v\n%s", into, err, doc)
	}
}

func toJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOldFilesConvert converts files in the shapes users have, with the edge cases they
// hit upstream, to the v2beta1 spec they mean.
func TestOldFilesConvert(t *testing.T) {
	for _, tc := range []struct {
		name, version, doc, want string
	}{
		{"v1alpha2 plain, namespaced, svc and kafka", "v1alpha2", `
spec:
  service: {name: client}
  calls:
  - name: server
  - name: server.otherns
  - name: svc:nginx
  - {name: server2, type: http, resources: [{path: /api, methods: [GET]}]}
  - {name: svc:web.ns2, type: http, resources: [{path: /x}]}
  - {name: kafka.kafka, type: kafka, topics: [{name: orders, operations: [consume, describe]}]}
`, `
workload: {name: client}
targets:
- kubernetes: {name: server}
- kubernetes: {name: server.otherns}
- service: {name: nginx}
- kubernetes: {name: server2, http: [{path: /api, methods: [GET]}]}
- service: {name: web.ns2, http: [{path: /x}]}
- kafka: {name: kafka.kafka, topics: [{name: orders, operations: [consume, describe]}]}
`},
		{"v1alpha3 kinds, empty kind, http, kafka, internet", "v1alpha3", `
spec:
  service: {name: client, kind: Deployment}
  calls:
  - {name: server.ns2, kind: StatefulSet, type: http, HTTPResources: [{path: /api, methods: [GET, POST]}]}
  - {name: plain, kind: ""}
  - name: svc:nginx
  - {name: kafka.kafka, type: kafka, kafkaTopics: [{name: orders, operations: [produce]}]}
  - {type: internet, internet: {domains: [api.example.com], ips: [1.2.3.0/24], ports: [443]}}
`, `
workload: {name: client, kind: Deployment}
targets:
- kubernetes: {name: server.ns2, kind: StatefulSet, http: [{path: /api, methods: [GET, POST]}]}
- kubernetes: {name: plain}
- service: {name: nginx}
- kafka: {name: kafka.kafka, topics: [{name: orders, operations: [produce]}]}
- internet: {domains: [api.example.com], ips: [1.2.3.0/24], ports: [443]}
`},
		{"v1beta1 same shape as v1alpha3", "v1beta1", `
spec:
  service: {name: client}
  calls:
  - {name: svc:api.prod, type: http, HTTPResources: [{path: "/v1/*"}]}
  - {name: broker, type: kafka}
`, `
workload: {name: client}
targets:
- service: {name: api.prod, http: [{path: "/v1/*"}]}
- kafka: {name: broker}
`},
		{"v2alpha1 same shape as v2beta1", "v2alpha1", `
spec:
  workload: {name: client, kind: Deployment}
  targets:
  - kubernetes: {name: server.ns2, kind: Deployment, http: [{path: /api, methods: [GET]}]}
  - service: {name: nginx}
  - internet: {domains: ["*.example.com"]}
`, `
workload: {name: client, kind: Deployment}
targets:
- kubernetes: {name: server.ns2, kind: Deployment, http: [{path: /api, methods: [GET]}]}
- service: {name: nginx}
- internet: {domains: ["*.example.com"]}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := spokes()[tc.version]()
			decode(t, tc.doc, src)
			var hub v2beta1.ClientIntents
			if err := src.ConvertTo(&hub); err != nil {
				t.Fatal(err)
			}
			var want v2beta1.ClientIntentsSpec
			decode(t, tc.want, &want)
			if got := toJSON(t, hub.Spec); got != toJSON(t, want) {
				t.Errorf("got  %s\nwant %s", got, toJSON(t, want))
			}
			back := spokes()[tc.version]()
			if err := back.ConvertFrom(&hub); err != nil {
				t.Fatal(err)
			}
			if a, b := toJSON(t, back), toJSON(t, src); a != b {
				t.Errorf("%s -> v2beta1 -> %s changed the file:\n%s\nwas\n%s", tc.version, tc.version, a, b)
			}
		})
	}
}

// TestOldFilesRejected lists calls that have no v2beta1 meaning, with the message a user sees.
func TestOldFilesRejected(t *testing.T) {
	for _, tc := range []struct{ version, doc, msg string }{
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: db, type: database}]}}`, "spec.calls[0]: calls of type database are not supported"},
		{"v1beta1", `{spec: {service: {name: c}, calls: [{name: x, type: aws}]}}`, "calls of type aws are not supported"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: svc:k, type: kafka}]}}`, "not a Service"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: svc:k, kind: Deployment}]}}`, "has no kind"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{type: internet}]}}`, "needs internet"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, type: internet, internet: {ips: [1.1.1.1]}}]}}`, "has no name"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, HTTPResources: [{path: /}]}]}}`, "HTTPResources need type http"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, kafkaTopics: [{name: t, operations: [all]}]}]}}`, "kafkaTopics need type kafka"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{kind: Deployment}]}}`, "has no name"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: x, topics: [{name: t, operations: [all]}]}]}}`, "topics need type kafka"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: x, resources: [{path: /}]}]}}`, "resources need type http"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: svc:k, type: kafka}]}}`, "not a Service"},
	} {
		src := spokes()[tc.version]()
		decode(t, tc.doc, src)
		err := src.ConvertTo(&v2beta1.ClientIntents{})
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %s: error %v, want one containing %q", tc.version, tc.doc, err, tc.msg)
		}
	}
}

// TestV1alpha2KeepsWhatItCannotSay reads a v2beta1 object with kinds and an internet target
// as v1alpha2 and writes it back: unchanged, nothing is lost; edited in v1alpha2, the edit
// wins.
func TestV1alpha2KeepsWhatItCannotSay(t *testing.T) {
	var hub v2beta1.ClientIntents
	decode(t, `
metadata: {name: c, namespace: ns, annotations: {team: a}}
spec:
  workload: {name: client, kind: Deployment}
  targets:
  - kubernetes: {name: server, kind: StatefulSet}
  - internet: {ips: [10.0.0.0/8]}
  - service: {name: nginx}
`, &hub)
	var old v1alpha2.ClientIntents
	if err := old.ConvertFrom(&hub); err != nil {
		t.Fatal(err)
	}
	if len(old.Spec.Calls) != 2 || old.Annotations[v1alpha2.HubSpecAnnotation] == "" || old.Annotations["team"] != "a" {
		t.Fatalf("v1alpha2 form %s", toJSON(t, old))
	}
	var back v2beta1.ClientIntents
	if err := old.ConvertTo(&back); err != nil {
		t.Fatal(err)
	}
	if toJSON(t, back) != toJSON(t, hub) {
		t.Errorf("unchanged round trip lost data:\n%s\nwas\n%s", toJSON(t, back), toJSON(t, hub))
	}

	old.Spec.Calls = old.Spec.Calls[:1]
	if err := old.ConvertTo(&back); err != nil {
		t.Fatal(err)
	}
	want := `{"workload":{"name":"client"},"targets":[{"kubernetes":{"name":"server"}}]}`
	if got := toJSON(t, back.Spec); got != want {
		t.Errorf("edited in v1alpha2: %s, want %s", got, want)
	}
	if _, ok := back.Annotations[v1alpha2.HubSpecAnnotation]; ok {
		t.Error("the saved spec annotation reached the stored object")
	}
}

// randomHub builds a v2beta1 ClientIntents that the CRD accepts, from r.
func randomHub(r *rand.Rand) *v2beta1.ClientIntents {
	name := func() string {
		n := []string{"a", "server", "web-1", "kafka", "x9"}[r.IntN(5)]
		if r.IntN(2) == 0 {
			n += "." + []string{"ns", "prod", "kafka"}[r.IntN(3)]
		}
		return n
	}
	kind := func() string { return []string{"", "", "Deployment", "StatefulSet"}[r.IntN(4)] }
	http := func() []v2beta1.HTTPTarget {
		var out []v2beta1.HTTPTarget
		for range r.IntN(3) {
			h := v2beta1.HTTPTarget{Path: []string{"/", "/api", "/v1/*"}[r.IntN(3)]}
			for _, m := range []v2beta1.HTTPMethod{"GET", "POST", "DELETE"} {
				if r.IntN(2) == 0 {
					h.Methods = append(h.Methods, m)
				}
			}
			out = append(out, h)
		}
		return out
	}
	ci := &v2beta1.ClientIntents{}
	ci.Name, ci.Namespace, ci.Generation = "intents", "ns", r.Int64N(9)
	if r.IntN(3) == 0 {
		ci.Annotations = map[string]string{"note": "kept"}
	}
	ci.Spec.Workload = v2beta1.Workload{Name: "client", Kind: kind()}
	for range r.IntN(6) {
		var t v2beta1.Target
		switch r.IntN(4) {
		case 0:
			t.Kubernetes = &v2beta1.KubernetesTarget{Name: name(), Kind: kind(), HTTP: http()}
		case 1:
			t.Service = &v2beta1.ServiceTarget{Name: name(), HTTP: http()}
		case 2:
			k := &v2beta1.KafkaTarget{Name: name()}
			for range r.IntN(3) {
				k.Topics = append(k.Topics, v2beta1.KafkaTopic{Name: []string{"*", "orders"}[r.IntN(2)], Operations: []v2beta1.KafkaOperation{"consume", "describe"}[:1+r.IntN(2)]})
			}
			t.Kafka = k
		default:
			in := &v2beta1.InternetTarget{}
			for range 1 + r.IntN(2) {
				if r.IntN(2) == 0 {
					in.Domains = append(in.Domains, fmt.Sprintf("d%d.example.com", r.IntN(99)))
				} else {
					in.IPs = append(in.IPs, fmt.Sprintf("10.%d.0.0/16", r.IntN(99)))
				}
			}
			if r.IntN(2) == 0 {
				in.Ports = []int32{443}
			}
			t.Internet = in
		}
		ci.Spec.Targets = append(ci.Spec.Targets, t)
	}
	ci.Status = v2beta1.ClientIntentsStatus{ObservedGeneration: ci.Generation, UpToDate: r.IntN(2) == 0, TargetCount: int32(len(ci.Spec.Targets)), Enforcement: "Enforced"}
	return ci
}

// checkHubRoundTrip converts hub to every version and back, and fails unless the result is
// the hub object it started from.
func checkHubRoundTrip(t *testing.T, hub *v2beta1.ClientIntents) {
	t.Helper()
	want := toJSON(t, hub)
	for version, newSpoke := range spokes() {
		s := newSpoke()
		if err := s.ConvertFrom(hub.DeepCopy()); err != nil {
			t.Fatalf("v2beta1 -> %s: %v\n%s", version, err, want)
		}
		var back v2beta1.ClientIntents
		if err := s.ConvertTo(&back); err != nil {
			t.Fatalf("%s -> v2beta1: %v\n%s", version, err, toJSON(t, s))
		}
		if got := toJSON(t, &back); got != want {
			t.Fatalf("v2beta1 -> %s -> v2beta1 changed the object:\n%s\nwas\n%s", version, got, want)
		}
		// And the spoke form is stable: converting it again gives the same spoke object.
		again := newSpoke()
		if err := again.ConvertFrom(&back); err != nil {
			t.Fatal(err)
		}
		if toJSON(t, again) != toJSON(t, s) {
			t.Fatalf("%s form not stable:\n%s\nwas\n%s", version, toJSON(t, again), toJSON(t, s))
		}
	}
}

// TestHubRoundTripRandom checks the hub round trip through every version on random objects.
func TestHubRoundTripRandom(t *testing.T) {
	for seed := range uint64(2000) {
		checkHubRoundTrip(t, randomHub(rand.New(rand.NewPCG(seed, 7))))
	}
}

// FuzzHubRoundTrip is the same check driven by `go test -fuzz=FuzzHubRoundTrip ./api`.
func FuzzHubRoundTrip(f *testing.F) {
	for _, seed := range []uint64{0, 1, 42, 1234, 99999} {
		f.Add(seed, uint64(7))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkHubRoundTrip(t, randomHub(rand.New(rand.NewPCG(a, b))))
	})
}

// FuzzOldFileToHub feeds arbitrary v1alpha3 and v1alpha2 specs (as JSON) to the
// conversion: it must either refuse them or give a v2beta1 spec whose v1 form converts to
// the same v2beta1 spec again.
func FuzzOldFileToHub(f *testing.F) {
	f.Add([]byte(`{"service":{"name":"c","kind":"Deployment"},"calls":[{"name":"svc:a.b","type":"http","HTTPResources":[{"path":"/"}]},{"type":"internet","internet":{"ips":["1.2.3.4"]}}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"k.kafka","type":"kafka","kafkaTopics":[{"name":"t","operations":["all"]}]},{"name":"s","type":"http"}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"svc:x","type":"kafka"},{"name":"d","type":"database"}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"a","type":"http","resources":[{"path":"/"}]},{"name":"k","type":"kafka","topics":[{"name":"t","operations":["consume"]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a3 v1alpha3.IntentsSpec
		if json.Unmarshal(data, &a3) == nil {
			if hub, err := v1alpha3.SpecToHub(a3); err == nil {
				down, err := v1alpha3.SpecFromHub(hub)
				if err != nil {
					t.Fatalf("v2beta1 -> v1alpha3: %v", err)
				}
				again, err := v1alpha3.SpecToHub(down)
				if err != nil || toJSON(t, again) != toJSON(t, hub) {
					t.Fatalf("v1alpha3 %s -> %s -> %s (%v)", data, toJSON(t, hub), toJSON(t, again), err)
				}
			}
		}
		var a2 v1alpha2.IntentsSpec
		if json.Unmarshal(data, &a2) == nil {
			if hub, err := v1alpha2.SpecToHub(a2); err == nil {
				down, exact := v1alpha2.SpecFromHub(hub)
				again, err := v1alpha2.SpecToHub(down)
				if !exact || err != nil || toJSON(t, again) != toJSON(t, hub) {
					t.Fatalf("v1alpha2 %s -> %s -> %s (exact %v, %v)", data, toJSON(t, hub), toJSON(t, again), exact, err)
				}
			}
		}
	})
}

// TestProtectedServiceRoundTrip converts a ProtectedService through every version.
func TestProtectedServiceRoundTrip(t *testing.T) {
	hub := &v2beta1.ProtectedService{Spec: v2beta1.ProtectedServiceSpec{Name: "server", Kind: "Deployment"}}
	hub.Name, hub.Namespace = "p", "ns"
	hub.Status.ObservedGeneration = 3
	want := toJSON(t, hub)
	for _, s := range []spoke{&v1alpha2.ProtectedService{}, &v1alpha3.ProtectedService{}, &v1beta1.ProtectedService{}, &v2alpha1.ProtectedService{}} {
		if err := s.ConvertFrom(hub.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		var back v2beta1.ProtectedService
		if err := s.ConvertTo(&back); err != nil {
			t.Fatal(err)
		}
		if got := toJSON(t, &back); got != want {
			t.Errorf("%T round trip: %s, want %s", s, got, want)
		}
	}
}

// TestSchemeIsConvertible checks that controller-runtime sees every kind as convertible
// through v2beta1, which is what makes it serve /convert for them.
func TestSchemeIsConvertible(t *testing.T) {
	s := runtime.NewScheme()
	if err := api.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{&v2beta1.ClientIntents{}, &v2beta1.ProtectedService{}} {
		ok, err := whconversion.IsConvertible(s, obj)
		if err != nil || !ok {
			t.Errorf("%T: convertible=%v, %v", obj, ok, err)
		}
	}
}
