package v1alpha3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/intentguard/intentguard/api/internal/unknown"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// ServicePrefix marks a call to a Kubernetes Service in the name of a call.
const ServicePrefix = "svc:"

// SpecToHub converts a v1alpha3 spec to v2beta1. Every call becomes one target:
//
//	{name: s[.ns], kind, type: http, HTTPResources} -> kubernetes: {name, kind, http}
//	{name: svc:s[.ns], type: http, HTTPResources}  -> service: {name, http}
//	{name: b[.ns], type: kafka, kafkaTopics}        -> kafka: {name, topics}
//	{type: internet, internet}                      -> internet
//
// A call of type http without resources means the same as a plain call; it reads back
// without its type. Any other call (of type database, aws, gcp or azure, with fields
// v2beta1 does not know, or breaking the rules above) has no equivalent: it becomes a
// target that keeps it whole under v2beta1.KeptV1alpha3Call, which is not enforced. The
// conversion never fails, so one such object never stops a list of every ClientIntents.
func SpecToHub(in IntentsSpec) v2beta1.ClientIntentsSpec {
	out := v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: in.Service.Name, Kind: in.Service.Kind}}
	for _, call := range in.Calls {
		out.Targets = append(out.Targets, callToTarget(call))
	}
	return out
}

func callToTarget(c Intent) v2beta1.Target {
	known := c
	known.Unsupported = nil
	return v2beta1.ConvertCall(c, known, c.Unsupported, bare(c), CallToTarget, v2beta1.KeptV1alpha3Call)
}

// bare reports whether a call sets nothing but fields this version does not know.
func bare(c Intent) bool {
	return len(c.Unsupported) > 0 && c.Name == "" && c.Kind == "" && c.Type == "" &&
		c.Topics == nil && c.HTTPResources == nil && c.Internet == nil
}

// CallToTarget converts a call that has a v2beta1 equivalent, and says why a call has
// none. Fields in c.Unsupported are not looked at.
func CallToTarget(c Intent) (v2beta1.Target, error) {
	svcName, isService := strings.CutPrefix(c.Name, ServicePrefix)
	switch c.Type {
	case IntentTypeInternet:
		if c.Internet == nil {
			return v2beta1.Target{}, fmt.Errorf("a call of type internet needs internet")
		}
		if c.Name != "" {
			return v2beta1.Target{}, fmt.Errorf("a call of type internet has no name (got %q)", c.Name)
		}
		if c.Kind != "" || len(c.Topics) > 0 || len(c.HTTPResources) > 0 {
			return v2beta1.Target{}, fmt.Errorf("a call of type internet has only internet")
		}
		return v2beta1.Target{Internet: c.Internet.DeepCopy()}, nil
	case IntentTypeKafka:
		if isService {
			return v2beta1.Target{}, fmt.Errorf("a kafka call names the broker workload, not a Service (%q)", c.Name)
		}
		if len(c.HTTPResources) > 0 {
			return v2beta1.Target{}, fmt.Errorf("a kafka call has no HTTPResources")
		}
		if c.Internet != nil || c.Kind != "" {
			return v2beta1.Target{}, fmt.Errorf("a kafka call has no internet and no kind")
		}
		if c.Name == "" {
			return v2beta1.Target{}, fmt.Errorf("the call has no name")
		}
		return v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: c.Name, Topics: copyTopics(c.Topics)}}, nil
	case "", IntentTypeHTTP:
		if len(c.Topics) > 0 {
			return v2beta1.Target{}, fmt.Errorf("kafkaTopics need type kafka")
		}
		if len(c.HTTPResources) > 0 && c.Type != IntentTypeHTTP {
			return v2beta1.Target{}, fmt.Errorf("HTTPResources need type http")
		}
		if c.Internet != nil {
			return v2beta1.Target{}, fmt.Errorf("internet needs type internet")
		}
		if c.Name == "" {
			return v2beta1.Target{}, fmt.Errorf("the call has no name")
		}
		if isService {
			if c.Kind != "" {
				return v2beta1.Target{}, fmt.Errorf("a Service call (%q) has no kind", c.Name)
			}
			return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: svcName, HTTP: copyHTTP(c.HTTPResources)}}, nil
		}
		return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: c.Name, Kind: c.Kind, HTTP: copyHTTP(c.HTTPResources)}}, nil
	default:
		return v2beta1.Target{}, fmt.Errorf("calls of type %s are not enforced by intentguard", c.Type)
	}
}

// SpecFromHub converts a v2beta1 spec to v1alpha3; every v2beta1 spec has a v1alpha3
// form, and SpecToHub of it is the spec again.
func SpecFromHub(in v2beta1.ClientIntentsSpec) IntentsSpec {
	out := IntentsSpec{Service: Service{Name: in.Workload.Name, Kind: in.Workload.Kind}}
	for _, t := range in.Targets {
		out.Calls = append(out.Calls, targetToCall(t))
	}
	return out
}

func targetToCall(t v2beta1.Target) Intent {
	var c Intent
	switch {
	case !t.IsUnsupported():
		switch {
		case t.Kubernetes != nil:
			c = Intent{Name: t.Kubernetes.Name, Kind: t.Kubernetes.Kind, HTTPResources: copyHTTP(t.Kubernetes.HTTP)}
			if len(c.HTTPResources) > 0 {
				c.Type = IntentTypeHTTP
			}
		case t.Service != nil:
			c = Intent{Name: ServicePrefix + t.Service.Name, HTTPResources: copyHTTP(t.Service.HTTP)}
			if len(c.HTTPResources) > 0 {
				c.Type = IntentTypeHTTP
			}
		case t.Kafka != nil:
			c = Intent{Name: t.Kafka.Name, Type: IntentTypeKafka, Topics: copyTopics(t.Kafka.Topics)}
		case t.Internet != nil:
			c = Intent{Type: IntentTypeInternet, Internet: t.Internet.DeepCopy()}
		}
		c.Unsupported = unknown.Copy(t.Unsupported)
		return c
	case len(t.Unsupported) == 1:
		if kept, ok := t.Unsupported[v2beta1.KeptV1alpha3Call]; ok && json.Unmarshal(kept.Raw, &c) == nil {
			if back := callToTarget(c); sameJSON(back, t) {
				return c
			}
		}
	}
	// A target v1alpha3 cannot say (an sql, aws, gcp or azure target, a kept call of
	// another version) reads as a call of its fields alone, which converts back to it.
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

// sameJSON reports whether two values encode to the same JSON.
func sameJSON(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// ConvertTo converts this ClientIntents to the hub version, v2beta1; it never fails.
func (src *ClientIntents) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = SpecToHub(src.Spec)
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertFrom converts the hub version, v2beta1, to this ClientIntents; it never fails.
func (dst *ClientIntents) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = SpecFromHub(src.Spec)
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
