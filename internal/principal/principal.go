// Package principal is the one place that decides how a workload identity appears in the
// certificates the credentials operator issues and in the principals the intents operator
// writes Kafka ACLs for, so that the two can never disagree.
package principal

import (
	"crypto/x509/pkix"
	"fmt"
	"strings"

	"github.com/intentguard/intentguard/internal/identity"
)

// Organization is the default O= of issued workload certificates.
const Organization = "intentguard"

// CommonName is the CN of a workload's certificate: "<name>.<namespace>", as upstream.
func CommonName(id identity.Identity) string { return id.Name + "." + id.Namespace }

// Subject is the subject of the certificate issued to a workload. org may be empty.
func Subject(id identity.Identity, org string) pkix.Name {
	n := pkix.Name{CommonName: CommonName(id)}
	if org != "" {
		n.Organization = []string{org}
	}
	return n
}

// DN renders a subject the way Apache Kafka's default SSL principal builder does
// (javax.security.auth.x500.X500Principal#getName, RFC 2253): the RDNs of the encoded
// sequence in reverse order, most specific first, e.g. "CN=client.ns,O=intentguard".
// Subjects with attributes Java renders as raw OIDs (serial number, e-mail) are refused
// rather than rendered in a form the broker would not produce.
func DN(n pkix.Name) (string, error) {
	if n.SerialNumber != "" || len(n.Names) > 0 && hasUnsupported(n) {
		return "", fmt.Errorf("subject %q has attributes a broker renders as OIDs", n.String())
	}
	var parts []string
	add := func(key string, vals ...string) {
		for _, v := range vals {
			parts = append(parts, key+"="+escape(v))
		}
	}
	// pkix.Name.ToRDNSequence encodes C, ST, L, STREET, POSTALCODE, O, OU, CN in that
	// order; RFC 2253 output reverses it.
	add("CN", n.CommonName)
	for i := len(n.OrganizationalUnit) - 1; i >= 0; i-- {
		add("OU", n.OrganizationalUnit[i])
	}
	for i := len(n.Organization) - 1; i >= 0; i-- {
		add("O", n.Organization[i])
	}
	if len(n.PostalCode) > 0 || len(n.StreetAddress) > 0 {
		return "", fmt.Errorf("subject %q has postal attributes a broker renders as OIDs", n.String())
	}
	for i := len(n.Locality) - 1; i >= 0; i-- {
		add("L", n.Locality[i])
	}
	for i := len(n.Province) - 1; i >= 0; i-- {
		add("ST", n.Province[i])
	}
	for i := len(n.Country) - 1; i >= 0; i-- {
		add("C", n.Country[i])
	}
	if n.CommonName == "" {
		parts = parts[1:]
	}
	return strings.Join(parts, ","), nil
}

// KafkaUser is the ACL principal ("User:<DN>") a broker with the default principal
// builder derives from a certificate with this subject.
func KafkaUser(n pkix.Name) (string, error) {
	dn, err := DN(n)
	if err != nil {
		return "", err
	}
	return "User:" + dn, nil
}

func hasUnsupported(n pkix.Name) bool {
	for _, atv := range n.Names {
		switch {
		case atv.Type.Equal([]int{2, 5, 4, 3}), atv.Type.Equal([]int{2, 5, 4, 10}), atv.Type.Equal([]int{2, 5, 4, 11}),
			atv.Type.Equal([]int{2, 5, 4, 6}), atv.Type.Equal([]int{2, 5, 4, 7}), atv.Type.Equal([]int{2, 5, 4, 8}):
		default:
			return true
		}
	}
	return false
}

// escape applies the escaping of the JVM's RFC 2253 rendering (sun.security.x509.AVA):
// every one of ,=+<>#;"\ is escaped wherever it occurs, and so is each leading and each
// trailing space, not only the first and the last; NUL is written as \00.
func escape(v string) string {
	lead := len(v) - len(strings.TrimLeft(v, " \r"))
	trail := len(strings.TrimRight(v, " \r"))
	var b strings.Builder
	for i, r := range v {
		if r == 0 {
			b.WriteString(`\00`)
			continue
		}
		if strings.ContainsRune(`,=+<>#;"\`, r) || i < lead || i >= trail {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
