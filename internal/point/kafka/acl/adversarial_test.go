package acl

import (
	"math/rand"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
)

// Two ClientIntents for one workload share its principal; when one of them is invalid the
// principal keeps what it had, so the valid twin's declared ACLs are not what the broker
// holds: it must say so, not report success.
func TestInvalidTwinFreezesTheValidOne(t *testing.T) {
	good := intents(t, "ns", `
metadata: {name: good}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	bad := intents(t, "ns", `
metadata: {name: bad}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: "no spaces", operations: [produce]}]}}]}`)
	r, err := Compile(broker, []v2beta1.ClientIntents{good, bad})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Frozen[clientP] {
		t.Fatalf("the shared principal is not frozen: %+v", r)
	}
	g := r.Intents[types.NamespacedName{Namespace: "ns", Name: "good"}]
	if g.Err == nil || !strings.Contains(g.Err.Error(), "ns/bad") {
		t.Fatalf("the valid twin reports %+v; want an error naming the invalid ClientIntents ns/bad", g)
	}
	if len(r.ACLs) != 0 {
		t.Fatalf("a frozen principal got compiled ACLs: %v", r.ACLs.Sorted())
	}
	// A principal of another workload is not affected.
	other := intents(t, "ns", `
metadata: {name: other}
spec: {workload: {name: other}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	r, err = Compile(broker, []v2beta1.ClientIntents{good, bad, other})
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Intents[types.NamespacedName{Namespace: "ns", Name: "other"}]; o.Err != nil || o.ACLs != 1 {
		t.Fatalf("another workload's intents: %+v", o)
	}
}

// A principal template must tell every client apart: two placeholders with only
// characters a namespace may hold between them (a-z, 0-9, -) are ambiguous ("a-b" + "c"
// and "a" + "b-c" render alike), and so is a placeholder used twice.
func TestPrincipalTemplateInjective(t *testing.T) {
	cases := []struct {
		tmpl string
		ok   bool
	}{
		{"User:$(dn)", true},
		{"User:$(workload).$(namespace)", true},
		{"User:$(namespace)/$(workload)", true},
		{"User:$(namespace):$(workload)", true},
		{"User:$(workload)@$(namespace).svc", true},
		{"User:spiffe://example.org/ns/$(namespace)/sa/$(workload)", true},
		{"User:x-$(namespace)--_--$(workload)-y", true},
		{"User:$(namespace)-$(workload)", false},
		{"User:$(workload)-$(namespace)", false},
		{"User:$(namespace)$(workload)", false},
		{"User:$(namespace)abc-9$(workload)", false},
		{"User:$(workload).$(namespace).$(workload)", false},
		{"User:$(namespace).$(workload).$(namespace)", false},
		{"User:$(workload)", false},
		{"User:$(namespace)", false},
		{"User:fixed", false},
	}
	for _, c := range cases {
		err := CheckPrincipalTemplate(c.tmpl)
		if (err == nil) != c.ok {
			t.Errorf("%q: error %v, want ok=%v", c.tmpl, err, c.ok)
		}
		s := broker
		s.PrincipalTemplate = c.tmpl
		_, perr := s.Principal(intent.Ref{Namespace: "a-b", Name: "c"})
		if (perr == nil) != c.ok {
			t.Errorf("%q: rendering error %v, want ok=%v", c.tmpl, perr, c.ok)
		}
	}
	// The ambiguity the rule prevents.
	s := broker
	s.PrincipalTemplate = "User:$(namespace)/$(workload)"
	p1, _ := s.Principal(intent.Ref{Namespace: "a-b", Name: "c"})
	p2, _ := s.Principal(intent.Ref{Namespace: "a", Name: "b-c"})
	if p1 == p2 {
		t.Fatalf("an accepted template renders two clients alike: %q", p1)
	}
}

// A consumer group template must keep every client's groups its own: placeholders need a
// separator no name holds, and a prefix must end in one, or web in shop gets the groups of
// web in shop-eu. The property half renders every accepted template for random clients
// and checks that no client's group resource covers a group another client may name.
func TestConsumerGroupsStayTheClients(t *testing.T) {
	cases := []struct {
		name   string
		prefix bool
		ok     bool
	}{
		{"$(workload).$(namespace)", false, true},
		{"$(workload).$(namespace).", true, true},
		{"$(namespace)_$(workload):", true, true},
		{"team-$(namespace)/$(workload)", false, true},
		{"shared", false, true},
		{"shared-", true, true},
		{"*", false, true},
		{"$(workload).$(namespace)", true, false},
		{"$(workload).$(namespace)-x", true, false},
		{"$(namespace)-$(workload)", false, false},
		{"$(workload)$(namespace)", false, false},
		{"$(workload)", false, false},
		{"$(namespace).", true, false},
		{"$(workload).$(namespace).$(workload)", false, false},
	}
	for _, c := range cases {
		err := CheckConsumerGroup(c.name, c.prefix)
		if (err == nil) != c.ok {
			t.Errorf("%q (prefix %v): error %v, want ok=%v", c.name, c.prefix, err, c.ok)
		}
		s := broker
		s.GroupName, s.GroupPrefix = c.name, c.prefix
		if _, _, gerr := s.group(intent.Ref{Namespace: "shop", Name: "web"}); (gerr == nil) != c.ok {
			t.Errorf("%q (prefix %v): rendering error %v, want ok=%v", c.name, c.prefix, gerr, c.ok)
		}
	}
	// The hole the prefix rule closes, spelled out.
	s := broker
	s.GroupName, s.GroupPrefix = "$(workload).$(namespace)", true
	if _, _, err := s.group(intent.Ref{Namespace: "shop", Name: "web"}); err == nil {
		t.Fatal(`prefix "web.shop" was rendered; it covers "web.shop-eu", the group of web in shop-eu`)
	}

	rnd := rand.New(rand.NewSource(1))
	label := func() string {
		const chars = "ab-"
		b := []byte{"ab"[rnd.Intn(2)]}
		for n := rnd.Intn(4); n > 0; n-- {
			b = append(b, chars[rnd.Intn(len(chars))])
		}
		return strings.TrimRight(string(b), "-") + "a"[:rnd.Intn(2)]
	}
	for _, c := range cases {
		if !c.ok || !strings.Contains(c.name, "$(") {
			continue
		}
		s := broker
		s.GroupName, s.GroupPrefix = c.name, c.prefix
		seen := map[string]intent.Ref{}
		for i := 0; i < 400; i++ {
			ref := intent.Ref{Namespace: label(), Name: label()}
			g, _, err := s.group(ref)
			if err != nil {
				t.Fatalf("%q: %v", c.name, err)
			}
			for other, oref := range seen {
				if oref == ref {
					continue
				}
				// A literal group is one name; a prefix covers every name it starts.
				clash := g == other || (c.prefix && (strings.HasPrefix(g, other) || strings.HasPrefix(other, g)))
				if clash {
					t.Fatalf("%q (prefix %v): %v gets %q, %v gets %q", c.name, c.prefix, ref, g, oref, other)
				}
			}
			seen[g] = ref
		}
	}
}
