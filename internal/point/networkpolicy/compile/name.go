package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/intent"
)

// PolicyName is the name of the NetworkPolicy that protects the server, and the only
// function that names one. No two servers of a namespace share a name, whatever the
// spelling of their kinds. A Service, a server without a kind, and a server of a
// well-known kind spelled as Kubernetes spells it are named "access-to.<kind>.<name>",
// with two dots, as earlier releases named them. Any other server's name has three dots,
// the last before a digest of the exact server. Names are valid object names.
func PolicyName(s intent.Server) string { return NameWithPrefix(policyNamePrefix, s) }

// NameWithPrefix names an object of the server by the rule of PolicyName with another
// prefix, so that another kind of object (a second policy of the same server, say) gets
// names just as injective and bounded. The prefix must be a lowercase DNS label followed
// by a dot, and no other prefix of the same kind of object may start with it.
func NameWithPrefix(prefix string, s intent.Server) string {
	kind, plain := "any", true
	switch {
	case s.Service:
		kind = "service"
	case s.Kind != "":
		kind = strings.ToLower(s.Kind)
		canonical, known := intent.WellKnownKind(s.Kind)
		plain = known && canonical == s.Kind
	}
	name := prefix + kind + "." + s.Name
	if plain && !strings.Contains(s.Name, ".") && len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	// Each part is cut so that the whole, digest included, fits, and is a non-empty DNS
	// label: the name has three dots, so it is never one of the names above.
	kindPart := labelPart(kind, 63)
	namePart := labelPart(s.Name, validation.DNS1123SubdomainMaxLength-len(prefix)-len(kindPart)-2-policyDigestLen)
	return prefix + kindPart + "." + namePart + "." + digest(s)[:policyDigestLen]
}

const (
	policyNamePrefix = "access-to."
	// policyDigestLen is long enough (80 bits) that no one can search for a server whose
	// name collides with a given one.
	policyDigestLen = 20
)

// digest is a hex SHA-256 of the exact server, namespace included, in an encoding no two
// servers share whatever their fields hold.
func digest(s intent.Server) string {
	h := sha256.New()
	for _, f := range []string{s.Namespace, s.Kind, s.Name, strconv.FormatBool(s.Service)} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// labelPart turns s into a non-empty DNS label of at most limit characters: lowercase,
// with every other character a dash, cut, and trimmed of dashes at either end.
func labelPart(s string, limit int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	if len(b) > limit {
		b = b[:limit]
	}
	if out := strings.Trim(string(b), "-"); out != "" {
		return out
	}
	return "x"
}
