package v1alpha2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/intentguard/intentguard/api/internal/unknown"
	"github.com/intentguard/intentguard/api/v2beta1"
)

const (
	// ServicePrefix marks a call to a Kubernetes Service in the name of a call.
	ServicePrefix = "svc:"
	// HubSpecAnnotation keeps, on a ClientIntents read as v1alpha2, the v2beta1 spec that
	// v1alpha2 cannot say (kinds and internet targets), so that writing the object back
	// unchanged loses nothing.
	HubSpecAnnotation = "intentguard.dev/v2beta1-spec"
)

// SpecToHub converts a v1alpha2 spec to v2beta1. Every call becomes one target:
//
//	{name: s[.ns], type: http, resources} -> kubernetes: {name, http}
//	{name: svc:s[.ns], type: http, resources} -> service: {name, http}
//	{name: b[.ns], type: kafka, topics} -> kafka: {name, topics}
//
// A call of type http without resources means the same as a plain call; it reads back
// without its type. Any other call has no equivalent: it becomes a target that keeps it
// whole under v2beta1.KeptV1alpha2Call, which is not enforced. The conversion never
// fails, so one such object never stops a list of every ClientIntents.
func SpecToHub(in IntentsSpec) v2beta1.ClientIntentsSpec {
	out := v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: in.Service.Name}}
	for _, c := range in.Calls {
		out.Targets = append(out.Targets, callToTarget(c))
	}
	return out
}

func callToTarget(c Intent) v2beta1.Target {
	bare := len(c.Unsupported) > 0 && c.Name == "" && c.Type == "" && c.Topics == nil && c.HTTPResources == nil
	known := c
	known.Unsupported = nil
	return v2beta1.ConvertCall(c, known, c.Unsupported, bare, CallToTarget, v2beta1.KeptV1alpha2Call)
}

// CallToTarget converts a call that has a v2beta1 equivalent, and says why a call has
// none. Fields in c.Unsupported are not looked at.
func CallToTarget(c Intent) (v2beta1.Target, error) {
	svcName, isService := strings.CutPrefix(c.Name, ServicePrefix)
	switch {
	case c.Name == "":
		return v2beta1.Target{}, fmt.Errorf("the call has no name")
	case c.Type == IntentTypeKafka && isService:
		return v2beta1.Target{}, fmt.Errorf("a kafka call names the broker workload, not a Service (%q)", c.Name)
	case c.Type == IntentTypeKafka && len(c.HTTPResources) > 0:
		return v2beta1.Target{}, fmt.Errorf("resources need type http")
	case c.Type == IntentTypeKafka:
		return v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: c.Name, Topics: copyTopics(c.Topics)}}, nil
	case c.Type != "" && c.Type != IntentTypeHTTP:
		return v2beta1.Target{}, fmt.Errorf("calls of type %s are not enforced by intentguard", c.Type)
	case len(c.Topics) > 0:
		return v2beta1.Target{}, fmt.Errorf("topics need type kafka")
	case len(c.HTTPResources) > 0 && c.Type != IntentTypeHTTP:
		return v2beta1.Target{}, fmt.Errorf("resources need type http")
	case isService:
		return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: svcName, HTTP: copyHTTP(c.HTTPResources)}}, nil
	default:
		return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: c.Name, HTTP: copyHTTP(c.HTTPResources)}}, nil
	}
}

// SpecFromHub converts a v2beta1 spec to v1alpha2. exact is false when v1alpha2 cannot
// say all of it: the workload's or a target's kind, and internet targets, are dropped.
// Targets of kinds this project does not enforce are kept as calls that convert back to
// them.
func SpecFromHub(in v2beta1.ClientIntentsSpec) (out IntentsSpec, exact bool) {
	out.Service = Service{Name: in.Workload.Name}
	exact = in.Workload.Kind == ""
	for _, t := range in.Targets {
		var c Intent
		switch {
		case t.Kubernetes != nil:
			c = Intent{Name: t.Kubernetes.Name, HTTPResources: copyHTTP(t.Kubernetes.HTTP)}
			exact = exact && t.Kubernetes.Kind == ""
		case t.Service != nil:
			c = Intent{Name: ServicePrefix + t.Service.Name, HTTPResources: copyHTTP(t.Service.HTTP)}
		case t.Kafka != nil:
			c = Intent{Name: t.Kafka.Name, Type: IntentTypeKafka, Topics: copyTopics(t.Kafka.Topics)}
		case t.Internet != nil:
			exact = false
			continue
		default:
			out.Calls = append(out.Calls, keptCall(t))
			continue
		}
		if len(c.HTTPResources) > 0 {
			c.Type = IntentTypeHTTP
		}
		c.Unsupported = unknown.Copy(t.Unsupported)
		out.Calls = append(out.Calls, c)
	}
	return out, exact
}

// keptCall returns the call of a target of a kind this project does not enforce: the
// v1alpha2 call it keeps, or else a call of its fields alone.
func keptCall(t v2beta1.Target) Intent {
	if kept, ok := t.Unsupported[v2beta1.KeptV1alpha2Call]; ok && len(t.Unsupported) == 1 {
		var c Intent
		if json.Unmarshal(kept.Raw, &c) == nil && sameJSON(callToTarget(c), t) {
			return c
		}
	}
	return Intent{Unsupported: unknown.Copy(t.Unsupported)}
}

func copyHTTP(in []v2beta1.HTTPTarget) []v2beta1.HTTPTarget {
	var out []v2beta1.HTTPTarget
	for _, h := range in {
		out = append(out, *h.DeepCopy())
	}
	return out
}

func copyTopics(in []v2beta1.KafkaTopic) []v2beta1.KafkaTopic {
	var out []v2beta1.KafkaTopic
	for _, t := range in {
		out = append(out, *t.DeepCopy())
	}
	return out
}

// sameJSON reports whether two values encode to the same JSON, which treats a nil and an
// empty list alike, as the API server does.
func sameJSON(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// plainIntent is Intent without its JSON methods.
type plainIntent Intent

// UnmarshalJSON decodes a call, keeping the fields it does not know in Unsupported.
func (c *Intent) UnmarshalJSON(data []byte) error {
	*c = Intent{}
	return unknown.Unmarshal(data, (*plainIntent)(c), &c.Unsupported)
}

// MarshalJSON encodes a call with the fields kept in Unsupported.
func (c Intent) MarshalJSON() ([]byte, error) {
	return unknown.Join(plainIntent(c), c.Unsupported)
}

// ConvertTo converts this ClientIntents to the hub version, v2beta1; it never fails. When the object
// carries HubSpecAnnotation and its v1alpha2 spec is still what that saved spec reads as,
// the saved spec is restored; a spec edited in v1alpha2 wins and the annotation is dropped.
func (src *ClientIntents) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ClientIntents)
	spec := SpecToHub(src.Spec)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	if saved, ok := dst.Annotations[HubSpecAnnotation]; ok {
		delete(dst.Annotations, HubSpecAnnotation)
		if len(dst.Annotations) == 0 {
			dst.Annotations = nil
		}
		var hub v2beta1.ClientIntentsSpec
		if err := json.Unmarshal([]byte(saved), &hub); err == nil {
			if down, _ := SpecFromHub(hub); sameJSON(down, src.Spec) {
				spec = hub
			}
		}
	}
	dst.Spec = spec
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertFrom converts the hub version, v2beta1, to this ClientIntents, saving the hub
// spec in HubSpecAnnotation when v1alpha2 cannot say all of it.
func (dst *ClientIntents) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ClientIntents)
	spec, exact := SpecFromHub(src.Spec)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	delete(dst.Annotations, HubSpecAnnotation)
	if !exact {
		saved, err := json.Marshal(src.Spec)
		if err != nil {
			return fmt.Errorf("saving the v2beta1 spec of ClientIntents %s/%s: %w", src.Namespace, src.Name, err)
		}
		if dst.Annotations == nil {
			dst.Annotations = map[string]string{}
		}
		dst.Annotations[HubSpecAnnotation] = string(saved)
	}
	dst.Spec = spec
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertTo converts this ProtectedService to the hub version, v2beta1.
func (src *ProtectedService) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ProtectedService)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = v2beta1.ProtectedServiceSpec(src.Spec)
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertFrom converts the hub version, v2beta1, to this ProtectedService.
func (dst *ProtectedService) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ProtectedService)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = ProtectedServiceSpec(src.Spec)
	dst.Status = *src.Status.DeepCopy()
	return nil
}
