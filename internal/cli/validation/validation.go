// Package validation checks intentguard's objects offline as a create in a cluster
// would: the CRD's OpenAPI schema and CEL rules for the version each is written in,
// then, converted to v2beta1, the admission webhook's own rules, with the other objects
// of the files standing for the rest of the cluster.
package validation

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/crdschema"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/webhook"
)

// The checks a finding comes from.
const (
	// CheckParse: the document is not a Kubernetes object.
	CheckParse = "parse"
	// CheckVersion: the apiVersion is not one intentguard serves for the kind.
	CheckVersion = "version"
	// CheckSchema: the CRD's OpenAPI schema, including fields it does not declare.
	CheckSchema = "schema"
	// CheckCEL: the CRD's x-kubernetes-validations rules.
	CheckCEL = "cel"
	// CheckWebhook: the admission webhook's rules.
	CheckWebhook = "webhook"
	// CheckDuplicate: the same object is written twice in the files.
	CheckDuplicate = "duplicate"
)

// Finding is one reason an object would be refused.
type Finding struct {
	// Check is the check that refuses it (CheckSchema, ...).
	Check string `json:"check"`
	// Field is the path of the field, as written in the object's version.
	Field string `json:"field,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Object is the outcome for one object of the files (or one document that is none).
type Object struct {
	input.Source
	APIVersion string    `json:"apiVersion,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Namespace  string    `json:"namespace,omitempty"`
	Name       string    `json:"name,omitempty"`
	Findings   []Finding `json:"findings"`
}

// Valid reports whether nothing refuses the object.
func (o Object) Valid() bool { return len(o.Findings) == 0 }

// Report is the outcome for all the files.
type Report struct {
	// Valid is true when every object is.
	Valid bool `json:"valid"`
	// Objects are the intentguard objects and unreadable documents, in file order.
	Objects []Object `json:"objects"`
	// Ignored counts the documents of other kinds, which are not checked.
	Ignored int `json:"ignored"`
}

// checked is an object that passed the schema, converted for the webhook's rules.
type checked struct {
	index   int
	version string
	hub     client.Object
}

// Validate checks docs; unreadable are the documents input.ReadFiles could not parse.
// Objects without a namespace are checked in namespace, as kubectl apply -n would
// create them.
func Validate(ctx context.Context, docs []input.Document, unreadable []*input.ParseError, namespace string) (Report, error) {
	var r Report
	for _, pe := range unreadable {
		r.Objects = append(r.Objects, Object{Source: pe.Source, Findings: []Finding{{Check: CheckParse, Message: pe.Err.Error()}}})
	}
	var passed []checked
	seen := map[input.Key]input.Source{}
	for _, d := range docs {
		gvk := d.Object.GroupVersionKind()
		if gvk.Group != v2beta1.GroupVersion.Group {
			r.Ignored++
			continue
		}
		o := Object{Source: d.Source, APIVersion: d.Object.GetAPIVersion(), Kind: gvk.Kind, Namespace: d.Object.GetNamespace(), Name: d.Object.GetName()}
		findings, hub, err := checkSchema(ctx, d, namespace)
		if err != nil {
			return Report{}, err
		}
		o.Findings = findings
		if o.Namespace == "" && namespaced(gvk) {
			o.Namespace = cmp.Or(namespace, "default")
		}
		if hub != nil {
			k := input.KeyOf(hub)
			if first, dup := seen[k]; dup {
				o.Findings = append(o.Findings, Finding{Check: CheckDuplicate, Field: "metadata.name",
					Message: fmt.Sprintf("%s is also written at %s; applying both keeps only the last", k, first)})
			} else {
				seen[k] = d.Source
				passed = append(passed, checked{index: len(r.Objects), version: gvk.Version, hub: hub})
			}
		}
		r.Objects = append(r.Objects, o)
	}
	for i, f := range checkWebhook(passed) {
		r.Objects[i].Findings = append(r.Objects[i].Findings, f...)
	}
	for i := range r.Objects {
		if r.Objects[i].Findings == nil {
			r.Objects[i].Findings = []Finding{}
		}
	}
	slices.SortStableFunc(r.Objects, func(a, b Object) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Document, b.Document), cmp.Compare(a.Item, b.Item))
	})
	r.Valid = !slices.ContainsFunc(r.Objects, func(o Object) bool { return !o.Valid() })
	return r, nil
}

// namespaced reports whether gvk is a namespaced kind intentguard serves.
func namespaced(gvk schema.GroupVersionKind) bool {
	s, ok, err := crdschema.For(gvk)
	return err == nil && ok && s.Namespaced
}

// checkSchema applies the CRD's schema and rules to the document as written, and returns
// the object in v2beta1 when they pass.
func checkSchema(ctx context.Context, d input.Document, namespace string) ([]Finding, client.Object, error) {
	gvk := d.Object.GroupVersionKind()
	s, ok, err := crdschema.For(gvk)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return []Finding{{Check: CheckVersion, Field: "apiVersion", Message: input.Unserved(gvk).Error()}}, nil, nil
	}
	u := d.Object.DeepCopy()
	if u.GetNamespace() == "" && s.Namespaced {
		u.SetNamespace(cmp.Or(namespace, "default"))
	}
	var findings []Finding
	s.Default(u.Object)
	for _, p := range s.Prune(u.Object) {
		findings = append(findings, Finding{Check: CheckSchema, Field: p, Message: fmt.Sprintf("unknown field: the schema of %s does not declare it (a strict apply refuses it)", gvk.GroupVersion())})
	}
	findings = append(findings, fieldFindings(CheckSchema, metadataErrors(u, s.Namespaced))...)
	schemaErrs, celErrs := s.Validate(ctx, u.Object)
	findings = append(findings, fieldFindings(CheckSchema, schemaErrs)...)
	findings = append(findings, fieldFindings(CheckCEL, celErrs)...)
	if len(findings) > 0 {
		return findings, nil, nil
	}
	o, err := input.Decode(input.Document{Source: d.Source, Object: u}, namespace)
	if err != nil {
		return []Finding{{Check: CheckSchema, Message: err.Error()}}, nil, nil
	}
	return nil, o, nil
}

// metadataErrors checks the name and namespace as the API server does for custom
// resources.
func metadataErrors(u *unstructured.Unstructured, namespaced bool) field.ErrorList {
	return apivalidation.ValidateObjectMetaAccessor(u, namespaced, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
}

// checkWebhook applies the webhook's rules to the objects that passed their schema, in
// file order, each compared with the objects of its kind and namespace written before it
// (as kubectl apply -f creates them one by one), and returns the findings by the index
// of the object in the report.
func checkWebhook(passed []checked) map[int][]Finding {
	intents := map[string][]v2beta1.ClientIntents{}
	protected := map[string][]v2beta1.ProtectedService{}
	out := map[int][]Finding{}
	for _, c := range passed {
		var errs field.ErrorList
		switch o := c.hub.(type) {
		case *v2beta1.ClientIntents:
			errs = webhook.CheckClientIntents(o, nil, intents[o.Namespace], webhook.PathsFor(c.version))
			if len(errs) == 0 {
				intents[o.Namespace] = append(intents[o.Namespace], *o)
			}
		case *v2beta1.ProtectedService:
			errs = webhook.ValidateProtectedService(o, protected[o.Namespace])
			if len(errs) == 0 {
				protected[o.Namespace] = append(protected[o.Namespace], *o)
			}
		}
		if len(errs) > 0 {
			out[c.index] = fieldFindings(CheckWebhook, errs)
		}
	}
	return out
}

// fieldFindings turns field errors into findings; an error about no field in particular
// (the API server's note that rules were skipped) keeps only its detail.
func fieldFindings(check string, errs field.ErrorList) []Finding {
	out := make([]Finding, 0, len(errs))
	for _, e := range errs {
		if e.Field == "<nil>" || e.Field == "" {
			out = append(out, Finding{Check: check, Message: e.Detail})
			continue
		}
		out = append(out, Finding{Check: check, Field: e.Field, Message: e.ErrorBody()})
	}
	return out
}
