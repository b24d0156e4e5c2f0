package credentials

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/principal"
)

// DefaultClusterDomain is the DNS domain of Services when the operator is not told otherwise.
const DefaultClusterDomain = "cluster.local"

// DNSPolicy decides which extra DNS names (the dns-names annotation) a pod may put in
// its certificate. Anyone who may create a pod in a namespace writes that annotation,
// so without a policy a pod could obtain a CA-signed server certificate for another
// namespace's Service or for any public name. The policy is the operator's, set by the
// cluster admin with flags.
type DNSPolicy struct {
	// ClusterDomain is the cluster's DNS domain (cluster.local).
	ClusterDomain string
	// Allowed are extra suffixes the cluster admin allows to every namespace: a name is
	// allowed when it is a suffix or lies below one. "{namespace}" in a suffix stands for
	// the pod's namespace, so that "{namespace}.apps.example.com" grants each namespace
	// its own subdomain.
	Allowed []string
}

// Validate reports a suffix that is not a DNS name, or one that would allow every name.
func (p DNSPolicy) Validate() error {
	if errs := validation.IsDNS1123Subdomain(p.ClusterDomain); len(errs) > 0 {
		return fmt.Errorf("cluster domain %q: %s", p.ClusterDomain, strings.Join(errs, "; "))
	}
	for _, s := range p.Allowed {
		check := strings.ReplaceAll(s, "{namespace}", "ns")
		if errs := validation.IsDNS1123Subdomain(check); len(errs) > 0 {
			return fmt.Errorf("allowed DNS suffix %q: %s", s, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Check returns an error naming the first extra DNS name a pod of namespace ns may not
// have. Inside the cluster domain a name must designate a Service of ns and nothing
// else:
//
//	<svc>.<ns>   <svc>.<ns>.svc   <svc>.<ns>.svc.<cluster-domain>
//
// the two .svc forms optionally preceded by a pod's host name under a headless Service
// (<pod>.<svc>.<ns>.svc.<cluster-domain>), and any form preceded by the wildcard "*"
// (one label; "*.<ns>.svc.<cluster-domain>" covers the namespace's Services, never
// more). A name that could also be read as designating another namespace (with a
// namespace called "svc", "a.b.svc" is ambiguous) is refused. Outside those forms only
// the admin's allowed suffixes apply.
func (p DNSPolicy) Check(ns string, names []string) error {
	for _, n := range names {
		if p.allowedByAdmin(ns, n) {
			continue
		}
		owners := p.namespacesOf(n)
		if len(owners) == 1 && owners[0] == ns {
			continue
		}
		why := "it is not a name of a Service in namespace " + ns
		if len(owners) > 0 {
			why = "it designates a Service of namespace " + strings.Join(owners, " or ")
		}
		hint := "<svc>." + ns + "[.svc[." + p.ClusterDomain + "]], optionally preceded by a pod name or *"
		return fmt.Errorf("%s%s: %q is refused: %s; a pod may ask for %s, or for names under a suffix the cluster admin allows (--allowed-dns-names)", Prefix, AnnDNSNames, n, why, hint)
	}
	return nil
}

// CheckIdentityName returns an error if the workload's own DNS name (<name>.<ns>, always
// issued) can be read as a Service name of another namespace: workload names may hold
// dots (a Deployment "a.b", or the workload-name annotation), and in a namespace called
// "svc" the workload "kafka.kafka" would otherwise be issued kafka.kafka.svc.
func (p DNSPolicy) CheckIdentityName(ns, name string) error {
	owners := p.namespacesOf(name)
	if len(owners) == 0 || (len(owners) == 1 && owners[0] == ns) {
		return nil
	}
	return fmt.Errorf("the workload's DNS name %q designates a Service of namespace %s; rename the workload", name, strings.Join(owners, " or "))
}

// checkAll checks the workload's own name and the extra ones of a pod of namespace ns.
func (p DNSPolicy) checkAll(ns string, id identity.Identity, extra []string) error {
	if err := p.CheckIdentityName(ns, principal.CommonName(id)); err != nil {
		return err
	}
	return p.Check(ns, extra)
}

// allowedByAdmin reports whether the name (or, for a wildcard, every name it covers)
// lies under one of the admin's suffixes.
func (p DNSPolicy) allowedByAdmin(ns, name string) bool {
	rest := strings.TrimPrefix(name, "*.")
	for _, s := range p.Allowed {
		s = strings.ReplaceAll(s, "{namespace}", ns)
		if rest == s || strings.HasSuffix(rest, "."+s) {
			return true
		}
	}
	return false
}

// namespacesOf returns, sorted and without repeats, every namespace the name can
// designate under the in-cluster forms; for a wildcard, every namespace of a name it
// covers.
func (p DNSPolicy) namespacesOf(name string) []string {
	labels := strings.Split(name, ".")
	domain := strings.Split(p.ClusterDomain, ".")
	var out []string
	// try reads l as a Service name; after a pod label only the .svc forms are names
	// (a short <pod>.<svc>.<ns> would read as <svc>.<ns>.svc of another namespace).
	try := func(l []string, afterPod bool) {
		switch {
		case len(l) == 2 && !afterPod:
		case len(l) == 3 && l[2] == "svc":
		case len(l) == 3+len(domain) && l[2] == "svc" && slices.Equal(l[3:], domain):
		default:
			return
		}
		if !slices.Contains(out, l[1]) {
			out = append(out, l[1])
		}
	}
	if labels[0] == "*" {
		// A covered name is the wildcard's parent after a pod label, or after a
		// Service's own label ("x" stands for any).
		try(labels[1:], true)
		try(append([]string{"x"}, labels[1:]...), false)
	} else {
		try(labels, false)
		if len(labels) > 1 {
			try(labels[1:], true)
		}
	}
	slices.Sort(out)
	return out
}
