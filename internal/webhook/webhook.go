// Package webhook serves the API server's calls to the operator: conversion between the
// served versions of the k8s.otterize.com kinds, and the validation CEL cannot express
// (one ClientIntents per workload, one ProtectedService per server, valid target
// namespaces, no new targets of kinds intentguard does not enforce, the grammar of a
// v1alpha2 file's saved v2beta1 spec). Every replica serves them, leader or not.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/intentguard/intentguard/api/v1alpha2"
	"github.com/intentguard/intentguard/api/v1alpha3"
	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
)

// The API server calls these webhooks for every served version (matchPolicy Equivalent),
// with the object converted to v2beta1. failurePolicy is Fail: the rules only hold if no
// write skips them, and the webhooks cover only these two kinds, so an operator outage
// blocks edits of intents (never of anything else, never deletes) until a replica answers.
//
// +kubebuilder:webhook:path=/validate-clientintents,mutating=false,failurePolicy=fail,sideEffects=None,groups=k8s.otterize.com,resources=clientintents,verbs=create;update,versions=v2beta1,name=clientintents.intentguard.dev,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-protectedservices,mutating=false,failurePolicy=fail,sideEffects=None,groups=k8s.otterize.com,resources=protectedservices,verbs=create;update,versions=v2beta1,name=protectedservices.intentguard.dev,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5

// Paths of the validating webhooks, as in the markers above.
const (
	// ClientIntentsPath validates ClientIntents.
	ClientIntentsPath = "/validate-clientintents"
	// ProtectedServicesPath validates ProtectedServices.
	ProtectedServicesPath = "/validate-protectedservices"
)

// Setup registers the conversion webhook (/convert) and the validating webhooks on the
// manager's webhook server. The manager's scheme must hold every served version.
//
// The duplicate checks query the cache indexes informer.RegisterIndexes adds, which the
// operator registers once for all its controllers: they must be registered first.
// They read the manager's cache: two objects for the same workload
// created within the cache's lag (milliseconds) can both pass, which the status of the
// ClientIntents then reports as usual; a live list per write would cost the API server a
// namespace-wide list for every apply.
func Setup(mgr ctrl.Manager) error {
	reader := mgr.GetClient()
	if err := ctrl.NewWebhookManagedBy(mgr, &v2beta1.ClientIntents{}).
		WithValidator(&intentsValidator{reader: reader}).
		WithValidatorCustomPath(ClientIntentsPath).
		Complete(); err != nil {
		return fmt.Errorf("registering the ClientIntents webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v2beta1.ProtectedService{}).
		WithValidator(&protectedValidator{reader: reader}).
		WithValidatorCustomPath(ProtectedServicesPath).
		Complete(); err != nil {
		return fmt.Errorf("registering the ProtectedService webhooks: %w", err)
	}
	return nil
}

var (
	intentsGK   = schema.GroupKind{Group: v2beta1.GroupVersion.Group, Kind: "ClientIntents"}
	protectedGK = schema.GroupKind{Group: v2beta1.GroupVersion.Group, Kind: "ProtectedService"}
)

// sameWorkload reports whether two name/kind pairs can name the same workload: an empty
// kind matches every kind.
func sameWorkload(nameA, kindA, nameB, kindB string) bool {
	return nameA == nameB && (kindA == "" || kindB == "" || kindA == kindB)
}

func describe(name, kind string) string {
	if kind == "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q (kind %s)", name, kind)
}

// Paths names the fields of a ClientIntents in the shape the user wrote: v1 versions
// say spec.service and spec.calls[i].name where v2 says spec.workload and
// spec.targets[i].<kind>.name. Conversion keeps one target per call, in order.
type Paths struct {
	V1 bool
	// V1alpha2 is set for files written in v1alpha2.
	V1alpha2 bool
}

func (p Paths) workload() *field.Path {
	if p.V1 {
		return field.NewPath("spec", "service")
	}
	return field.NewPath("spec", "workload")
}

func (p Paths) target(i int) *field.Path {
	if p.V1 {
		return field.NewPath("spec", "calls").Index(i)
	}
	return field.NewPath("spec", "targets").Index(i)
}

func (p Paths) targetName(i int, kind string) *field.Path {
	if p.V1 {
		return field.NewPath("spec", "calls").Index(i).Child("name")
	}
	return field.NewPath("spec", "targets").Index(i).Child(kind, "name")
}

// ValidateClientIntents checks ci against the other ClientIntents of its namespace: target
// names must be "name" or "name.namespace" with a valid namespace, and no other
// ClientIntents may declare the calls of the same workload. Errors name fields as paths
// does.
func ValidateClientIntents(ci *v2beta1.ClientIntents, others []v2beta1.ClientIntents, paths Paths) field.ErrorList {
	errs := validateTargets(ci.Spec.Targets, paths)
	w := ci.Spec.Workload
	for _, o := range others {
		if o.Name == ci.Name || o.DeletionTimestamp != nil {
			continue
		}
		if ow := o.Spec.Workload; sameWorkload(w.Name, w.Kind, ow.Name, ow.Kind) {
			errs = append(errs, field.Forbidden(paths.workload(),
				fmt.Sprintf("ClientIntents %q in namespace %q already declares the calls of workload %s; add these targets there, or delete one of them",
					o.Name, ci.Namespace, describe(ow.Name, ow.Kind))))
		}
	}
	return errs
}

func validateTargets(targets []v2beta1.Target, paths Paths) field.ErrorList {
	var errs field.ErrorList
	for i, t := range targets {
		var p *field.Path
		var name string
		switch {
		case t.Kubernetes != nil:
			p, name = paths.targetName(i, "kubernetes"), t.Kubernetes.Name
		case t.Service != nil:
			p, name = paths.targetName(i, "service"), t.Service.Name
		case t.Kafka != nil:
			p, name = paths.targetName(i, "kafka"), t.Kafka.Name
		default:
			continue
		}
		server, ns, hasNS := strings.Cut(name, ".")
		for _, msg := range validation.IsDNS1123Label(server) {
			errs = append(errs, field.Invalid(p, name, "the name before the dot: "+msg))
		}
		if hasNS {
			for _, msg := range validation.IsDNS1123Label(ns) {
				errs = append(errs, field.Invalid(p, name, fmt.Sprintf("%q is not a valid namespace name: %s", ns, msg)))
			}
		}
	}
	return errs
}

// ValidateKeptTargets refuses the targets of ci of a kind this project does not enforce
// (sql, aws, gcp, azure, a call of an older version with no v2beta1 equivalent) and the
// fields of a target it does not know, unless old, the object as stored, already has the
// same target: objects written upstream keep them, and their status says they are not
// enforced, but nobody adds new ones. old is nil on create.
func ValidateKeptTargets(ci, old *v2beta1.ClientIntents, paths Paths) field.ErrorList {
	had := map[string]bool{}
	if old != nil {
		for _, t := range old.Spec.Targets {
			if b, err := json.Marshal(t); err == nil {
				had[string(b)] = true
			}
		}
	}
	var errs field.ErrorList
	for i, t := range ci.Spec.Targets {
		if len(t.Unsupported) == 0 && !t.IsUnsupported() {
			continue
		}
		if b, err := json.Marshal(t); err == nil && had[string(b)] {
			continue
		}
		errs = append(errs, field.Forbidden(paths.target(i), unsupportedReason(t)))
	}
	return errs
}

// ValidateHTTPPaths refuses the http paths and methods of ci that Istio would refuse or
// read otherwise than written (see authz.ValidatePath), unless old, the object as
// stored, already has the same path: objects written before the check stay editable.
// old is nil on create.
func ValidateHTTPPaths(ci, old *v2beta1.ClientIntents, paths Paths) field.ErrorList {
	had := map[string]bool{}
	if old != nil {
		for _, t := range old.Spec.Targets {
			for _, h := range intent.HTTPOf(t) {
				had[h.Path] = true
			}
		}
	}
	var errs field.ErrorList
	for i, t := range ci.Spec.Targets {
		p := paths.target(i)
		switch {
		case paths.V1alpha2:
			p = p.Child("resources")
		case paths.V1:
			p = p.Child("HTTPResources")
		case t.Kubernetes != nil:
			p = p.Child("kubernetes", "http")
		default:
			p = p.Child("service", "http")
		}
		for j, h := range intent.HTTPOf(t) {
			at := p.Index(j)
			if err := authz.ValidatePath(h.Path); err != nil && !had[h.Path] {
				errs = append(errs, field.Invalid(at.Child("path"), h.Path, err.Error()))
			}
			for k, m := range h.Methods {
				if err := authz.ValidateMethod(m); err != nil {
					errs = append(errs, field.NotSupported(at.Child("methods").Index(k), m, methodNames()))
				}
			}
		}
	}
	return errs
}

func methodNames() []string {
	out := make([]string, len(authz.Methods))
	for i, m := range authz.Methods {
		out[i] = string(m)
	}
	return out
}

// unsupportedReason says why a target is refused, in the words of the version the kept
// call was written in.
func unsupportedReason(t v2beta1.Target) string {
	keys := slices.Sorted(maps.Keys(t.Unsupported))
	if len(keys) == 1 {
		var err error
		switch raw := t.Unsupported[keys[0]].Raw; keys[0] {
		case v2beta1.KeptV1alpha3Call:
			err = keptCallError(raw, v1alpha3.CallToTarget, func(c v1alpha3.Intent) []string { return slices.Sorted(maps.Keys(c.Unsupported)) })
		case v2beta1.KeptV1alpha2Call:
			err = keptCallError(raw, v1alpha2.CallToTarget, func(c v1alpha2.Intent) []string { return slices.Sorted(maps.Keys(c.Unsupported)) })
		}
		if err != nil {
			return err.Error()
		}
	}
	if t.IsUnsupported() {
		if len(keys) == 0 {
			return "a target must set exactly one of kubernetes, service, kafka or internet"
		}
		return fmt.Sprintf("%s targets are not supported: a target sets exactly one of kubernetes, service, kafka or internet", strings.Join(keys, ", "))
	}
	return fmt.Sprintf("unknown fields %s", strings.Join(keys, ", "))
}

// keptCallError says why a call kept as written has no v2beta1 equivalent: what convert
// says of it, or the fields it has that its version does not know.
func keptCallError[C any](raw []byte, convert func(C) (v2beta1.Target, error), unknownFields func(C) []string) error {
	var c C
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("the kept call is not a call: %w", err)
	}
	if _, err := convert(c); err != nil {
		return err
	}
	if extra := unknownFields(c); len(extra) > 0 {
		return fmt.Errorf("fields %s are not known", strings.Join(extra, ", "))
	}
	return nil
}

// ValidateProtectedService checks that no other ProtectedService of the namespace
// protects the same server.
func ValidateProtectedService(ps *v2beta1.ProtectedService, others []v2beta1.ProtectedService) field.ErrorList {
	var errs field.ErrorList
	for _, o := range others {
		if o.Name == ps.Name || o.DeletionTimestamp != nil {
			continue
		}
		if sameWorkload(ps.Spec.Name, ps.Spec.Kind, o.Spec.Name, o.Spec.Kind) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "name"),
				fmt.Sprintf("ProtectedService %q in namespace %q already protects %s", o.Name, ps.Namespace, describe(o.Spec.Name, o.Spec.Kind))))
		}
	}
	return errs
}

// PathsFor returns the field names of a file written in version.
func PathsFor(version string) Paths {
	return Paths{V1: strings.HasPrefix(version, "v1"), V1alpha2: version == "v1alpha2"}
}

// requestPaths returns the field names of the version the user's request was written in.
func requestPaths(ctx context.Context) Paths {
	req, err := admission.RequestFromContext(ctx)
	if err != nil || req.RequestKind == nil {
		return Paths{}
	}
	return PathsFor(req.RequestKind.Version)
}

// CheckClientIntents applies every rule the webhook holds a ClientIntents to, without
// I/O: ci as converted to v2beta1, old as stored (nil on create), others the ClientIntents
// of its namespace to compare with (none on an update that keeps the workload), paths
// those of the version the user wrote.
func CheckClientIntents(ci, old *v2beta1.ClientIntents, others []v2beta1.ClientIntents, paths Paths) field.ErrorList {
	errs := append(ValidateClientIntents(ci, others, paths), ValidateKeptTargets(ci, old, paths)...)
	errs = append(errs, ValidateHTTPPaths(ci, old, paths)...)
	if paths.V1alpha2 {
		// Only a v1alpha2 file reaches here with fields no schema checked: the v2beta1
		// spec kept in its annotation.
		errs = append(errs, ValidateGrammar(ci.Spec, hubSpecPath)...)
	}
	return errs
}

type intentsValidator struct{ reader client.Reader }

func (v *intentsValidator) validate(ctx context.Context, ci, old *v2beta1.ClientIntents, checkOthers bool) (admission.Warnings, error) {
	var others v2beta1.ClientIntentsList
	if checkOthers {
		if err := v.reader.List(ctx, &others, client.MatchingFields{informer.IndexClient: informer.NameKey(intent.Client(ci).Namespace, intent.Client(ci).Name)}); err != nil {
			return nil, fmt.Errorf("listing the ClientIntents of namespace %s: %w", ci.Namespace, err)
		}
	}
	if errs := CheckClientIntents(ci, old, others.Items, requestPaths(ctx)); len(errs) > 0 {
		return nil, apierrors.NewInvalid(intentsGK, ci.Name, errs)
	}
	return nil, nil
}

// ValidateCreate validates a new ClientIntents.
func (v *intentsValidator) ValidateCreate(ctx context.Context, ci *v2beta1.ClientIntents) (admission.Warnings, error) {
	return v.validate(ctx, ci, nil, true)
}

// ValidateUpdate validates a changed ClientIntents; the duplicate check runs only when the
// workload changes, so that existing duplicates can still be edited away.
func (v *intentsValidator) ValidateUpdate(ctx context.Context, old, ci *v2beta1.ClientIntents) (admission.Warnings, error) {
	return v.validate(ctx, ci, old, old.Spec.Workload != ci.Spec.Workload)
}

// ValidateDelete allows every delete.
func (v *intentsValidator) ValidateDelete(context.Context, *v2beta1.ClientIntents) (admission.Warnings, error) {
	return nil, nil
}

type protectedValidator struct{ reader client.Reader }

func (v *protectedValidator) validate(ctx context.Context, ps *v2beta1.ProtectedService) (admission.Warnings, error) {
	var others v2beta1.ProtectedServiceList
	if err := v.reader.List(ctx, &others, client.MatchingFields{informer.IndexProtectedName: informer.NameKey(ps.Namespace, ps.Spec.Name)}); err != nil {
		return nil, fmt.Errorf("listing the ProtectedServices of namespace %s: %w", ps.Namespace, err)
	}
	if errs := ValidateProtectedService(ps, others.Items); len(errs) > 0 {
		return nil, apierrors.NewInvalid(protectedGK, ps.Name, errs)
	}
	return nil, nil
}

// ValidateCreate validates a new ProtectedService.
func (v *protectedValidator) ValidateCreate(ctx context.Context, ps *v2beta1.ProtectedService) (admission.Warnings, error) {
	return v.validate(ctx, ps)
}

// ValidateUpdate validates a changed ProtectedService when the server it names changes.
func (v *protectedValidator) ValidateUpdate(ctx context.Context, old, ps *v2beta1.ProtectedService) (admission.Warnings, error) {
	if old.Spec == ps.Spec {
		return nil, nil
	}
	return v.validate(ctx, ps)
}

// ValidateDelete allows every delete.
func (v *protectedValidator) ValidateDelete(context.Context, *v2beta1.ProtectedService) (admission.Warnings, error) {
	return nil, nil
}
