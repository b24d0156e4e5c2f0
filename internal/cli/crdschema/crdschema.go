// Package crdschema applies the schemas of intentguard's CustomResourceDefinitions (the
// generated ones in config/crd) as the API server does: defaults, pruning of unknown
// fields, OpenAPI validation, list-type invariants and CEL rules, per served version. It
// lets files be read and checked offline exactly as a create would treat them.
package crdschema

import (
	"context"
	"fmt"
	"io/fs"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/config/crd"
)

// Version is the schema of one served version of one kind.
type Version struct {
	// Namespaced is true for kinds that live in a namespace.
	Namespaced bool

	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator
}

// For returns the schema of gvk, or false when no CRD in config/crd serves it.
func For(gvk schema.GroupVersionKind) (*Version, bool, error) {
	all, err := load()
	if err != nil {
		return nil, false, err
	}
	v, ok := all[gvk]
	return v, ok, nil
}

// Kinds returns the group and kind of every CRD, with the versions they serve.
func Kinds() (map[schema.GroupKind][]string, error) {
	all, err := load()
	if err != nil {
		return nil, err
	}
	kinds := map[schema.GroupKind][]string{}
	for gvk := range all {
		kinds[gvk.GroupKind()] = append(kinds[gvk.GroupKind()], gvk.Version)
	}
	return kinds, nil
}

// load compiles the schemas once: CEL compilation is the costly part, and every command
// that reads files needs them.
var load = sync.OnceValues(func() (map[schema.GroupVersionKind]*Version, error) {
	files, err := fs.Glob(crd.FS, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("listing the embedded CRDs: %w", err)
	}
	all := map[schema.GroupVersionKind]*Version{}
	for _, name := range files {
		b, err := fs.ReadFile(crd.FS, name)
		if err != nil {
			return nil, fmt.Errorf("reading the embedded CRD %s: %w", name, err)
		}
		var def apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &def); err != nil {
			return nil, fmt.Errorf("decoding the embedded CRD %s: %w", name, err)
		}
		for _, ver := range def.Spec.Versions {
			if !ver.Served || ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
				continue
			}
			v, err := compile(ver.Schema.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("compiling the schema of %s %s: %w", def.Spec.Names.Kind, ver.Name, err)
			}
			v.Namespaced = def.Spec.Scope == apiextensionsv1.NamespaceScoped
			all[schema.GroupVersionKind{Group: def.Spec.Group, Version: ver.Name, Kind: def.Spec.Names.Kind}] = v
		}
	}
	return all, nil
})

func compile(external *apiextensionsv1.JSONSchemaProps) (*Version, error) {
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(external, &internal, nil); err != nil {
		return nil, fmt.Errorf("converting the schema: %w", err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, fmt.Errorf("building the structural schema: %w", err)
	}
	validator, _, err := validation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, fmt.Errorf("building the OpenAPI validator: %w", err)
	}
	return &Version{structural: s, validator: validator, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
}

// Default sets the schema's defaults in obj, as the API server does when it decodes a
// request.
func (v *Version) Default(obj map[string]any) {
	structuraldefaulting.Default(obj, v.structural)
}

// Prune removes the fields the schema does not declare from obj and returns their paths
// (like spec.foo), which a strict create refuses.
func (v *Version) Prune(obj map[string]any) []string {
	return structuralpruning.PruneWithOptions(obj, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
}

// Validate checks obj, defaulted and pruned, as the API server does on create: the
// OpenAPI schema, embedded metadata and list sets and maps (schemaErrs), then the CEL
// rules (celErrs). Like the API server, it does not run the rules when the schema
// already refuses a value of a kind the rules may not survive (a wrong type, a missing
// field, a value out of an enum, too long or too many), and says so instead.
func (v *Version) Validate(ctx context.Context, obj map[string]any) (schemaErrs, celErrs field.ErrorList) {
	schemaErrs = validation.ValidateCustomResource(nil, obj, v.validator)
	schemaErrs = append(schemaErrs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	schemaErrs = append(schemaErrs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	for _, e := range schemaErrs {
		if blocking[e.Type] {
			return schemaErrs, field.ErrorList{field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")}
		}
	}
	celErrs, _ = v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return schemaErrs, celErrs
}

// blocking are the errors after which the API server does not run CEL rules.
var blocking = map[field.ErrorType]bool{
	field.ErrorTypeNotSupported: true,
	field.ErrorTypeRequired:     true,
	field.ErrorTypeTooLong:      true,
	field.ErrorTypeTooMany:      true,
	field.ErrorTypeTypeInvalid:  true,
}
