package v2beta1

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/intentguard/intentguard/api/internal/unknown"
)

// Fields of a target that keep, as written, a call of an older version with no
// equivalent in v2beta1 (a database, aws, gcp or azure call, say).
const (
	// KeptV1alpha2Call keeps a v1alpha2 call.
	KeptV1alpha2Call = "v1alpha2Call"
	// KeptV1alpha3Call keeps a v1alpha3 or v1beta1 call (the two have the same shape).
	KeptV1alpha3Call = "v1alpha3Call"
)

// ConvertCall converts a call of an older version whose fields unknown to that version
// are extra: a bare call (extra alone, as SpecFromHub writes a target the version cannot
// say) becomes that target again; a call with an equivalent, by convert (called on known,
// the call without extra), carries extra along; any other becomes a target keeping the
// whole call under key.
func ConvertCall[C any](call, known C, extra map[string]apiextensionsv1.JSON, bare bool, convert func(C) (Target, error), key string) Target {
	if bare {
		return Target{Unsupported: unknown.Copy(extra)}
	}
	if t, err := convert(known); err == nil {
		t.Unsupported = unknown.Copy(extra)
		return t
	}
	raw, err := json.Marshal(call)
	if err != nil {
		// The call types always encode; were one not to, the target would still be
		// kept as one not enforced.
		raw = []byte("{}")
	}
	return Target{Unsupported: map[string]apiextensionsv1.JSON{key: {Raw: raw}}}
}

// plainTarget is Target without its JSON methods.
type plainTarget Target

// UnmarshalJSON decodes a target, keeping the fields it does not know in Unsupported.
func (t *Target) UnmarshalJSON(data []byte) error {
	*t = Target{}
	return unknown.Unmarshal(data, (*plainTarget)(t), &t.Unsupported)
}

// MarshalJSON encodes a target with the fields kept in Unsupported.
func (t Target) MarshalJSON() ([]byte, error) {
	return unknown.Join(plainTarget(t), t.Unsupported)
}

// IsUnsupported reports whether the target is of a kind this project does not enforce:
// it sets none of kubernetes, service, kafka and internet.
func (t Target) IsUnsupported() bool {
	return t.Kubernetes == nil && t.Service == nil && t.Kafka == nil && t.Internet == nil
}

// DescribeUnsupported names an unsupported target for status ("database call db.shop",
// "sql target") and says why it is not enforced.
func (t Target) DescribeUnsupported() (name, why string) {
	keys := make([]string, 0, len(t.Unsupported))
	for k := range t.Unsupported {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 1 && (keys[0] == KeptV1alpha2Call || keys[0] == KeptV1alpha3Call) {
		var call struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(t.Unsupported[keys[0]].Raw, &call)
		kind := "call"
		if call.Type != "" {
			kind = call.Type + " call"
		}
		name = strings.TrimSpace(kind + " " + call.Name)
		switch call.Type {
		case "database", "aws", "gcp", "azure":
			return name, fmt.Sprintf("calls of type %s are not enforced by intentguard: the call is kept as written and neither allowed nor blocked", call.Type)
		}
		return name, "this call has no v2beta1 equivalent (see docs/migrating-from-otterize.md): it is kept as written and neither allowed nor blocked"
	}
	if len(keys) == 0 {
		return "empty target", "the target sets none of kubernetes, service, kafka or internet: nothing is allowed or blocked for it"
	}
	name = strings.Join(keys, ",") + " target"
	var named struct {
		Name string `json:"name"`
	}
	if len(keys) == 1 && json.Unmarshal(t.Unsupported[keys[0]].Raw, &named) == nil && named.Name != "" {
		name += " " + named.Name
	}
	return name, fmt.Sprintf("%s targets are not enforced by intentguard: the target is kept as written and neither allowed nor blocked", strings.Join(keys, ", "))
}
