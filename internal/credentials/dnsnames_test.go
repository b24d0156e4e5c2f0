package credentials

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestDNSPolicy(t *testing.T) {
	inCluster := DNSPolicy{ClusterDomain: "cluster.local"}
	admin := DNSPolicy{ClusterDomain: "cluster.local", Allowed: []string{"example.com", "{namespace}.apps.internal"}}
	cases := []struct {
		policy DNSPolicy
		ns     string
		name   string
		ok     bool
	}{
		{inCluster, "tenant", "api.tenant", true},
		{inCluster, "tenant", "api.tenant.svc", true},
		{inCluster, "tenant", "api.tenant.svc.cluster.local", true},
		{inCluster, "tenant", "*.api.tenant.svc.cluster.local", true},
		{inCluster, "tenant", "*.api.tenant.svc", true},
		{inCluster, "tenant", "kafka-0.kafka.tenant.svc.cluster.local", true},
		{inCluster, "tenant", "kafka-0.kafka.tenant.svc", true},
		{inCluster, "tenant", "kafka-0.kafka.tenant", false},
		{inCluster, "tenant", "*.tenant.svc.cluster.local", true},
		{inCluster, "tenant", "*.tenant.svc", true},
		{inCluster, "tenant", "*.tenant", true},
		// Another namespace's Service, in every spelling.
		{inCluster, "tenant", "kafka.kafka.svc.cluster.local", false},
		{inCluster, "tenant", "kafka.kafka.svc", false},
		{inCluster, "tenant", "kafka.kafka", false},
		{inCluster, "tenant", "kafka-0.kafka.kafka.svc.cluster.local", false},
		{inCluster, "tenant", "*.kafka.kafka.svc.cluster.local", false},
		// Wildcards at or above the namespace, and public names.
		{inCluster, "tenant", "*.svc.cluster.local", false},
		{inCluster, "tenant", "*.cluster.local", false},
		{inCluster, "tenant", "*.com", false},
		{inCluster, "tenant", "*.kafka", false},
		{inCluster, "tenant", "*.kafka.svc", false},
		{inCluster, "svc", "*.kafka.svc", false},
		{inCluster, "tenant", "api.example.com", false},
		{inCluster, "tenant", "api.tenant.svc.other.domain", false},
		{inCluster, "tenant", "a.b.api.tenant.svc.cluster.local", false},
		// A namespace called "svc" cannot claim "<svc>.<ns>.svc" of another namespace.
		{inCluster, "svc", "api.victim.svc", false},
		{inCluster, "svc", "api.svc.svc", true},
		{inCluster, "svc", "*.api.svc", false},
		// The cluster domain is the operator's setting.
		{DNSPolicy{ClusterDomain: "corp.example"}, "tenant", "api.tenant.svc.corp.example", true},
		{DNSPolicy{ClusterDomain: "corp.example"}, "tenant", "api.tenant.svc.cluster.local", false},
		// The admin's suffixes.
		{admin, "tenant", "example.com", true},
		{admin, "tenant", "api.example.com", true},
		{admin, "tenant", "*.example.com", true},
		{admin, "tenant", "a.b.example.com", true},
		{admin, "tenant", "notexample.com", false},
		{admin, "tenant", "*.com", false},
		{admin, "tenant", "web.tenant.apps.internal", true},
		{admin, "tenant", "*.tenant.apps.internal", true},
		{admin, "tenant", "web.victim.apps.internal", false},
		{admin, "tenant", "*.apps.internal", false},
	}
	for _, c := range cases {
		err := c.policy.Check(c.ns, []string{c.name})
		if (err == nil) != c.ok {
			t.Errorf("%v: pod in %s asking for %q: %v, want allowed=%v", c.policy, c.ns, c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), c.name) {
			t.Errorf("refusal %q does not name %q", err, c.name)
		}
	}
}

// Whatever names are asked for, a name allowed to a pod of one namespace (without an
// admin suffix) is refused to a pod of every other namespace: no in-cluster name is
// shared between namespaces.
func TestDNSPolicyNeverSharesANameBetweenNamespaces(t *testing.T) {
	p := DNSPolicy{ClusterDomain: "cluster.local"}
	words := []string{"svc", "cluster", "local", "a", "b", "kafka", "tenant", "victim", "default", "*"}
	r := rand.New(rand.NewPCG(1, 2))
	namespaces := []string{"svc", "cluster", "local", "a", "tenant", "victim", "default", "kafka"}
	for i := 0; i < 50000; i++ {
		n := 1 + r.IntN(6)
		labels := make([]string, n)
		for j := range labels {
			labels[j] = words[r.IntN(len(words))]
			if labels[j] == "*" && j > 0 {
				labels[j] = "a"
			}
		}
		name := strings.Join(labels, ".")
		var allowed []string
		for _, ns := range namespaces {
			if p.Check(ns, []string{name}) == nil {
				allowed = append(allowed, ns)
			}
		}
		if len(allowed) > 1 {
			t.Fatalf("%q is allowed to pods of %v", name, allowed)
		}
		// A wildcard allowed to one namespace covers no name allowed to another.
		if len(allowed) == 1 && labels[0] == "*" {
			for _, w := range words[:len(words)-1] {
				covered := w + name[1:]
				for _, ns := range namespaces {
					if ns != allowed[0] && p.Check(ns, []string{covered}) == nil {
						t.Fatalf("%q, allowed to %s, covers %q, allowed to %s", name, allowed[0], covered, ns)
					}
				}
			}
		}
	}
}

func TestDNSPolicyIdentityName(t *testing.T) {
	p := DNSPolicy{ClusterDomain: "cluster.local"}
	for _, c := range []struct {
		ns, name string
		ok       bool
	}{
		{"shop", "orders.shop", true},
		{"shop", "my.app.shop", true}, // a dotted Deployment name designates no Service
		{"svc", "kafka.kafka.svc", false},
		{"svc", "orders.svc", true},
	} {
		if err := p.CheckIdentityName(c.ns, c.name); (err == nil) != c.ok {
			t.Errorf("workload name %q in %s: %v, want allowed=%v", c.name, c.ns, err, c.ok)
		}
	}
}

func TestDNSPolicyValidate(t *testing.T) {
	for _, bad := range []DNSPolicy{
		{ClusterDomain: ""},
		{ClusterDomain: "cluster.local", Allowed: []string{"*.example.com"}},
		{ClusterDomain: "cluster.local", Allowed: []string{"Example.COM"}},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := (DNSPolicy{ClusterDomain: "cluster.local", Allowed: []string{"{namespace}.example.com"}}).Validate(); err != nil {
		t.Error(err)
	}
}
