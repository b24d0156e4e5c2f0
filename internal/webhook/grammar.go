package webhook

import (
	"net/netip"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/intentguard/intentguard/api/v1alpha2"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// The grammars of the CRD schemas (see the markers in api/v2beta1). The API server checks
// them on the version a file is written in; a v1alpha2 file can also carry a whole
// v2beta1 spec in v1alpha2.HubSpecAnnotation, which no schema sees, so the webhook checks
// the spec the conversion produced against them again.
var (
	kindGrammar   = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*)?$`)
	pathGrammar   = regexp.MustCompile(`^/[!-~]*$`)
	topicGrammar  = regexp.MustCompile(`^[a-zA-Z0-9._-]{0,249}[*]?$`)
	domainGrammar = regexp.MustCompile(`^([*][.])?([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.]?$`)
)

// hubSpecPath is where a v1alpha2 file keeps the v2beta1 spec it cannot say.
var hubSpecPath = field.NewPath("metadata", "annotations").Key(v1alpha2.HubSpecAnnotation)

// ValidateGrammar checks the strings of a v2beta1 spec that name things in other systems
// (kinds, HTTP paths, Kafka topics, domains, addresses, ports); root is where the spec
// sits in the file the user wrote.
func ValidateGrammar(spec v2beta1.ClientIntentsSpec, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(ok bool, p *field.Path, v any, msg string) {
		if !ok {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	const kindMsg = "must be a Kubernetes kind: a capital letter, then letters and digits (like Deployment)"
	check(kindGrammar.MatchString(spec.Workload.Kind) && len(spec.Workload.Kind) <= 63, root.Child("workload", "kind"), spec.Workload.Kind, kindMsg)
	http := func(p *field.Path, hs []v2beta1.HTTPTarget) {
		for j, h := range hs {
			check(pathGrammar.MatchString(h.Path) && len(h.Path) <= 2048, p.Child("http").Index(j).Child("path"), h.Path,
				"must start with / and hold only visible ASCII characters (percent-encode the others)")
		}
	}
	for i, t := range spec.Targets {
		p := root.Child("targets").Index(i)
		switch {
		case t.Kubernetes != nil:
			check(kindGrammar.MatchString(t.Kubernetes.Kind) && len(t.Kubernetes.Kind) <= 63, p.Child("kubernetes", "kind"), t.Kubernetes.Kind, kindMsg)
			http(p.Child("kubernetes"), t.Kubernetes.HTTP)
		case t.Service != nil:
			http(p.Child("service"), t.Service.HTTP)
		case t.Kafka != nil:
			for j, topic := range t.Kafka.Topics {
				n := topic.Name
				check(n != "" && n != "." && n != ".." && topicGrammar.MatchString(n), p.Child("kafka", "topics").Index(j).Child("name"), n,
					"must be a Kafka topic name (at most 249 letters, digits, '.', '_' or '-', not . or ..), such a name followed by * for a prefix, or *")
			}
		case t.Internet != nil:
			in := p.Child("internet")
			if len(t.Internet.Domains)+len(t.Internet.IPs) == 0 {
				errs = append(errs, field.Required(in, "an internet target needs at least one domain or ip"))
			}
			for j, d := range t.Internet.Domains {
				check(len(d) <= 253 && domainGrammar.MatchString(d), in.Child("domains").Index(j), d, "not a DNS name (like api.example.com, or *.example.com for its subdomains)")
			}
			for j, a := range t.Internet.IPs {
				_, errAddr := netip.ParseAddr(a)
				_, errPrefix := netip.ParsePrefix(a)
				check(errAddr == nil || errPrefix == nil, in.Child("ips").Index(j), a, "not an IP address or CIDR block (like 192.0.2.1 or 192.0.2.0/24)")
			}
			for j, port := range t.Internet.Ports {
				check(port >= 1 && port <= 65535, in.Child("ports").Index(j), port, "not a port: 1 to 65535")
			}
		}
	}
	return errs
}
