package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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

// TestOldCallsWithoutEquivalentAreKept lists calls that have no v2beta1 meaning. Admission
// refuses them in new files (with the message CallToTarget gives), but objects written
// before, upstream, must still convert: into a target that keeps the call as written,
// which reads back unchanged in its own version and in every other.
func TestOldCallsWithoutEquivalentAreKept(t *testing.T) {
	for _, tc := range []struct{ version, doc, msg, status string }{
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: db, type: database, databaseResources: [{databaseName: shop, table: users, operations: [SELECT]}]}]}}`, "calls of type database are not enforced", "database call db"},
		{"v1beta1", `{spec: {service: {name: c}, calls: [{name: "arn:aws:s3:::b", type: aws, awsActions: ["s3:GetObject"]}]}}`, "calls of type aws are not enforced", "aws call arn:aws:s3:::b"},
		{"v1beta1", `{spec: {service: {name: c}, calls: [{name: projects/p, type: gcp, gcpPermissions: [storage.buckets.get]}]}}`, "calls of type gcp", "gcp call projects/p"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: /subscriptions/s, type: azure, azureRoles: [Reader], azureKeyVaultPolicy: {secretPermissions: [get]}}]}}`, "calls of type azure", "azure call /subscriptions/s"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: svc:k, type: kafka}]}}`, "not a Service", "kafka call svc:k"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: svc:k, kind: Deployment}]}}`, "has no kind", "call svc:k"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{type: internet}]}}`, "needs internet", "internet call"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, type: internet, internet: {ips: [1.1.1.1]}}]}}`, "has no name", "internet call x"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, HTTPResources: [{path: /}]}]}}`, "HTTPResources need type http", "call x"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{name: x, kafkaTopics: [{name: t, operations: [all]}]}]}}`, "kafkaTopics need type kafka", "call x"},
		{"v1alpha3", `{spec: {service: {name: c}, calls: [{kind: Deployment}]}}`, "has no name", "call"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: x, topics: [{name: t, operations: [all]}]}]}}`, "topics need type kafka", "call x"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: x, resources: [{path: /}]}]}}`, "resources need type http", "call x"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: svc:k, type: kafka}]}}`, "not a Service", "kafka call svc:k"},
		{"v1alpha2", `{spec: {service: {name: c}, calls: [{name: db, type: database, databaseResources: [{table: t, operations: [ALL]}]}]}}`, "calls of type database are not enforced", "database call db"},
		{"v2alpha1", `{spec: {workload: {name: c}, targets: [{sql: {name: pg, privileges: [{databaseName: shop, table: "*", operations: [ALL]}]}}]}}`, "", "sql target pg"},
		{"v2alpha1", `{spec: {workload: {name: c}, targets: [{aws: {arn: "arn:aws:s3:::b", actions: ["s3:*"]}}, {service: {name: web}}]}}`, "", "aws target"},
		{"v2alpha1", `{spec: {workload: {name: c}, targets: [{gcp: {resource: r, permissions: [p]}}, {azure: {scope: s, roles: [Reader]}}]}}`, "", "gcp target"},
	} {
		src := spokes()[tc.version]()
		if err := yaml.Unmarshal([]byte(tc.doc), src); err != nil {
			t.Fatal(err)
		}
		var hub v2beta1.ClientIntents
		if err := src.ConvertTo(&hub); err != nil {
			t.Errorf("%s %s -> v2beta1: %v", tc.version, tc.doc, err)
			continue
		}
		kept := hub.Spec.Targets[0]
		if !kept.IsUnsupported() {
			t.Errorf("%s %s: target %s would be enforced", tc.version, tc.doc, toJSON(t, kept))
		}
		if name, why := kept.DescribeUnsupported(); !strings.HasPrefix(name, tc.status) || !strings.Contains(why, "not enforced") && !strings.Contains(why, "neither allowed nor blocked") {
			t.Errorf("%s %s: status %q: %q, want a name starting %q", tc.version, tc.doc, name, why, tc.status)
		}
		if tc.msg != "" {
			var err error
			switch c := src.(type) {
			case *v1alpha3.ClientIntents:
				_, err = v1alpha3.CallToTarget(c.Spec.Calls[0])
			case *v1beta1.ClientIntents:
				var a3 v1alpha3.ClientIntents
				decode(t, toJSON(t, c), &a3)
				_, err = v1alpha3.CallToTarget(a3.Spec.Calls[0])
			case *v1alpha2.ClientIntents:
				_, err = v1alpha2.CallToTarget(c.Spec.Calls[0])
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s %s: CallToTarget says %v, want %q", tc.version, tc.doc, err, tc.msg)
			}
		}
		back := spokes()[tc.version]()
		if err := back.ConvertFrom(hub.DeepCopy()); err != nil {
			t.Fatalf("v2beta1 -> %s: %v", tc.version, err)
		}
		if a, b := toJSON(t, back), toJSON(t, src); a != b {
			t.Errorf("%s -> v2beta1 -> %s changed the object:\n%s\nwas\n%s", tc.version, tc.version, a, b)
		}
		checkHubRoundTrip(t, &hub)
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
		switch r.IntN(5) {
		case 4:
			t = randomUnsupported(r)
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

// randomUnsupported returns a target of a kind this project does not enforce, as objects
// written upstream have them: an sql, aws, gcp or azure target, or an older version's call
// kept as written.
func randomUnsupported(r *rand.Rand) v2beta1.Target {
	raw := func(s string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(s)} }
	name := []string{"db", "arn:aws:s3:::bucket", "projects/p/buckets/b", "pg.shop"}[r.IntN(4)]
	typ := []string{"database", "aws", "gcp", "azure"}[r.IntN(4)]
	switch r.IntN(6) {
	case 0:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{"sql": raw(fmt.Sprintf(`{"name":%q,"privileges":[{"databaseName":"shop","table":"*","operations":["ALL"]}]}`, name))}}
	case 1:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{"aws": raw(`{"arn":"arn:aws:s3:::b","actions":["s3:GetObject"]}`), "gcp": raw(`{"resource":"r"}`)}}
	case 2:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{v2beta1.KeptV1alpha3Call: raw(fmt.Sprintf(`{"awsActions":["s3:*"],"name":%q,"type":%q}`, name, typ))}}
	case 3:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{v2beta1.KeptV1alpha3Call: raw(`{"databaseResources":[{"databaseName":"shop","operations":["SELECT"],"table":"users"}],"name":"db","type":"database"}`)}}
	case 4:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{v2beta1.KeptV1alpha2Call: raw(fmt.Sprintf(`{"name":%q,"type":%q}`, name, typ))}}
	default:
		return v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{"azure": raw(`{"scope":"/subscriptions/s","roles":["Reader"]}`)}}
	}
}

// randomOld builds a v1alpha3 spec as upstream's CRD accepted it, with calls of every type
// (database, aws, gcp and azure with their resources among them) and fields this project
// does not know.
func randomOld(r *rand.Rand) v1alpha3.IntentsSpec {
	spec := v1alpha3.IntentsSpec{Service: v1alpha3.Service{Name: "client", Kind: []string{"", "Deployment"}[r.IntN(2)]}}
	raw := func(s string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(s)} }
	for range r.IntN(6) {
		c := v1alpha3.Intent{Name: []string{"server", "svc:web.prod", "kafka.kafka", "db", ""}[r.IntN(5)]}
		c.Type = []v1alpha3.IntentType{"", "http", "kafka", "internet", "database", "aws", "gcp", "azure"}[r.IntN(8)]
		if r.IntN(3) == 0 {
			c.Kind = "Deployment"
		}
		if r.IntN(3) == 0 {
			c.HTTPResources = []v2beta1.HTTPTarget{{Path: "/api", Methods: []v2beta1.HTTPMethod{"GET"}}}
		}
		if r.IntN(3) == 0 {
			c.Topics = []v2beta1.KafkaTopic{{Name: "orders", Operations: []v2beta1.KafkaOperation{"consume"}}}
		}
		if r.IntN(4) == 0 {
			c.Internet = &v2beta1.InternetTarget{IPs: []string{"10.0.0.0/8"}}
		}
		switch r.IntN(5) {
		case 0:
			c.Unsupported = map[string]apiextensionsv1.JSON{"databaseResources": raw(`[{"databaseName":"shop","table":"users","operations":["SELECT","INSERT"]}]`)}
		case 1:
			c.Unsupported = map[string]apiextensionsv1.JSON{"awsActions": raw(`["s3:GetObject"]`), "gcpPermissions": raw(`["storage.objects.get"]`)}
		case 2:
			c.Unsupported = map[string]apiextensionsv1.JSON{"azureRoles": raw(`["Reader"]`), "azureKeyVaultPolicy": raw(`{"secretPermissions":["get"]}`)}
		}
		spec.Calls = append(spec.Calls, c)
	}
	return spec
}

// checkOldRoundTrip converts an old spec, in every v1 version, to v2beta1 and back: the
// conversion must not fail and must give the spec back, except where the documented
// reading changes it (a call of type http without resources reads back without its type,
// an empty kind as none).
func checkOldRoundTrip(t *testing.T, spec v1alpha3.IntentsSpec) {
	t.Helper()
	a3 := &v1alpha3.ClientIntents{Spec: spec}
	a3.Name, a3.Namespace = "legacy", "tenant"
	var hub v2beta1.ClientIntents
	if err := a3.ConvertTo(&hub); err != nil {
		t.Fatalf("v1alpha3 -> v2beta1 failed: %v\n%s", err, toJSON(t, a3))
	}
	back := &v1alpha3.ClientIntents{}
	if err := back.ConvertFrom(hub.DeepCopy()); err != nil {
		t.Fatalf("v2beta1 -> v1alpha3 failed: %v", err)
	}
	for i, c := range a3.Spec.Calls {
		if _, err := v1alpha3.CallToTarget(withoutUnknown(c)); err == nil && c.Type == v1alpha3.IntentTypeHTTP && len(c.HTTPResources) == 0 {
			continue // reads back as a plain call
		}
		if a, b := toJSON(t, back.Spec.Calls[i]), toJSON(t, c); a != b {
			t.Fatalf("call %d: v1alpha3 -> v2beta1 -> v1alpha3 gave\n%s\nwas\n%s\nv2beta1: %s", i, a, b, toJSON(t, hub.Spec))
		}
	}
	var b1 v1beta1.ClientIntents
	decode(t, toJSON(t, a3), &b1)
	var hub2 v2beta1.ClientIntents
	if err := b1.ConvertTo(&hub2); err != nil {
		t.Fatalf("v1beta1 -> v2beta1 failed: %v", err)
	}
	if canonical(t, hub2.Spec) != canonical(t, hub.Spec) {
		t.Fatalf("v1beta1 and v1alpha3 read differently:\n%s\n%s", toJSON(t, hub2.Spec), toJSON(t, hub.Spec))
	}
	checkHubRoundTrip(t, &hub)
}

// canonical encodes v with the keys of every object in order, as the API server does not
// keep their order.
func canonical(t *testing.T, v any) string {
	t.Helper()
	var generic any
	if err := json.Unmarshal([]byte(toJSON(t, v)), &generic); err != nil {
		t.Fatal(err)
	}
	return toJSON(t, generic)
}

func withoutUnknown(c v1alpha3.Intent) v1alpha3.Intent {
	c.Unsupported = nil
	return c
}

// TestOldRoundTripRandom checks checkOldRoundTrip on random old specs.
func TestOldRoundTripRandom(t *testing.T) {
	for seed := range uint64(2000) {
		checkOldRoundTrip(t, randomOld(rand.New(rand.NewPCG(seed, 11))))
	}
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
// conversion: it must never fail, and must give a v2beta1 spec whose v1 form converts to
// the same v2beta1 spec again.
func FuzzOldFileToHub(f *testing.F) {
	f.Add([]byte(`{"service":{"name":"c","kind":"Deployment"},"calls":[{"name":"svc:a.b","type":"http","HTTPResources":[{"path":"/"}]},{"type":"internet","internet":{"ips":["1.2.3.4"]}}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"k.kafka","type":"kafka","kafkaTopics":[{"name":"t","operations":["all"]}]},{"name":"s","type":"http"}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"svc:x","type":"kafka"},{"name":"d","type":"database"}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"a","type":"http","resources":[{"path":"/"}]},{"name":"k","type":"kafka","topics":[{"name":"t","operations":["consume"]}]}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"db","type":"database","databaseResources":[{"databaseName":"shop","table":"users","operations":["SELECT"]}]}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"name":"arn:aws:s3:::b","type":"aws","awsActions":["s3:GetObject"]},{"name":"p","type":"gcp","gcpPermissions":["x"]},{"name":"s","type":"azure","azureRoles":["Reader"]}]}`))
	f.Add([]byte(`{"service":{"name":"c"},"calls":[{"sql":{"name":"pg"}},{"v1alpha3Call":{"name":"x","type":"aws"}},{"v1alpha2Call":{"type":"kafka"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a3 v1alpha3.IntentsSpec
		if json.Unmarshal(data, &a3) == nil {
			hub := v1alpha3.SpecToHub(a3)
			again := v1alpha3.SpecToHub(v1alpha3.SpecFromHub(hub))
			if toJSON(t, again) != toJSON(t, hub) {
				t.Fatalf("v1alpha3 %s -> %s -> %s", data, toJSON(t, hub), toJSON(t, again))
			}
		}
		var a2 v1alpha2.IntentsSpec
		if json.Unmarshal(data, &a2) == nil {
			hub := v1alpha2.SpecToHub(a2)
			down, exact := v1alpha2.SpecFromHub(hub)
			again := v1alpha2.SpecToHub(down)
			if !exact || toJSON(t, again) != toJSON(t, hub) {
				t.Fatalf("v1alpha2 %s -> %s -> %s (exact %v)", data, toJSON(t, hub), toJSON(t, again), exact)
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
