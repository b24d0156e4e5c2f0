// Package unknown keeps the JSON fields of an object that its Go type has no field for,
// so that a call or target of a kind this project cannot enforce survives conversion
// between the served versions exactly as it was written.
package unknown

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	kjson "sigs.k8s.io/json"
)

// Split decodes data into known, a pointer to a struct without JSON methods of its own,
// and returns the fields of data that known has no field for. Field names are matched
// case-sensitively, as the API server does.
func Split(data []byte, known any) (map[string]apiextensionsv1.JSON, error) {
	var all map[string]json.RawMessage
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &all); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", known, err)
	}
	names := fieldNames(reflect.TypeOf(known).Elem())
	var extra map[string]apiextensionsv1.JSON
	for k, v := range all {
		if names[k] {
			continue
		}
		if extra == nil {
			extra = map[string]apiextensionsv1.JSON{}
		}
		extra[k] = apiextensionsv1.JSON{Raw: append([]byte(nil), v...)}
		delete(all, k)
	}
	b, err := json.Marshal(all)
	if err != nil {
		return nil, fmt.Errorf("re-encoding %T: %w", known, err)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, known); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", known, err)
	}
	return extra, nil
}

// Join encodes known and adds the fields of extra that known does not set itself.
func Join(known any, extra map[string]apiextensionsv1.JSON) ([]byte, error) {
	b, err := json.Marshal(known)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("re-decoding %T: %w", known, err)
	}
	for k, v := range extra {
		if _, set := all[k]; !set && len(v.Raw) > 0 {
			all[k] = v.Raw
		}
	}
	return json.Marshal(all)
}

// Copy returns a deep copy of extra.
func Copy(extra map[string]apiextensionsv1.JSON) map[string]apiextensionsv1.JSON {
	if extra == nil {
		return nil
	}
	out := make(map[string]apiextensionsv1.JSON, len(extra))
	for k, v := range extra {
		out[k] = *v.DeepCopy()
	}
	return out
}

// fieldNames returns the JSON names of a struct's fields.
func fieldNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case name == "" && f.Anonymous:
			for n := range fieldNames(f.Type) {
				names[n] = true
			}
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	return names
}

// Unmarshal is Split for a type's UnmarshalJSON: known points at the value being decoded,
// seen as a type without JSON methods, and extra at its field for unknown fields.
func Unmarshal(data []byte, known any, extra *map[string]apiextensionsv1.JSON) error {
	fields, err := Split(data, known)
	*extra = fields
	return err
}
