package v1alpha3

import (
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/conversion"

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
// without its type. Calls of type database, aws, gcp and azure have no equivalent and are
// an error.
func SpecToHub(in IntentsSpec) (v2beta1.ClientIntentsSpec, error) {
	out := v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: in.Service.Name, Kind: in.Service.Kind}}
	for i, call := range in.Calls {
		t, err := callToTarget(call)
		if err != nil {
			return v2beta1.ClientIntentsSpec{}, fmt.Errorf("spec.calls[%d]: %w", i, err)
		}
		out.Targets = append(out.Targets, t)
	}
	return out, nil
}

func callToTarget(c Intent) (v2beta1.Target, error) {
	svcName, isService := strings.CutPrefix(c.Name, ServicePrefix)
	switch c.Type {
	case IntentTypeInternet:
		if c.Internet == nil {
			return v2beta1.Target{}, fmt.Errorf("a call of type internet needs internet")
		}
		if c.Name != "" {
			return v2beta1.Target{}, fmt.Errorf("a call of type internet has no name (got %q)", c.Name)
		}
		return v2beta1.Target{Internet: c.Internet.DeepCopy()}, nil
	case IntentTypeKafka:
		if isService {
			return v2beta1.Target{}, fmt.Errorf("a kafka call names the broker workload, not a Service (%q)", c.Name)
		}
		if len(c.HTTPResources) > 0 {
			return v2beta1.Target{}, fmt.Errorf("a kafka call has no HTTPResources")
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
		return v2beta1.Target{}, fmt.Errorf("calls of type %s are not supported", c.Type)
	}
}

// SpecFromHub converts a v2beta1 spec to v1alpha3; every v2beta1 spec has a v1alpha3 form.
func SpecFromHub(in v2beta1.ClientIntentsSpec) (IntentsSpec, error) {
	out := IntentsSpec{Service: Service{Name: in.Workload.Name, Kind: in.Workload.Kind}}
	for i, t := range in.Targets {
		var c Intent
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
		default:
			return IntentsSpec{}, fmt.Errorf("spec.targets[%d] sets no target", i)
		}
		out.Calls = append(out.Calls, c)
	}
	return out, nil
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

// ConvertTo converts this ClientIntents to the hub version, v2beta1.
func (src *ClientIntents) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ClientIntents)
	spec, err := SpecToHub(src.Spec)
	if err != nil {
		return fmt.Errorf("converting ClientIntents %s/%s from %s: %w", src.Namespace, src.Name, GroupVersion.Version, err)
	}
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = spec
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertFrom converts the hub version, v2beta1, to this ClientIntents.
func (dst *ClientIntents) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ClientIntents)
	spec, err := SpecFromHub(src.Spec)
	if err != nil {
		return fmt.Errorf("converting ClientIntents %s/%s to %s: %w", src.Namespace, src.Name, GroupVersion.Version, err)
	}
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
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
