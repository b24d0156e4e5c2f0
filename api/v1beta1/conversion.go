package v1beta1

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/intentguard/intentguard/api/internal/unknown"
	"github.com/intentguard/intentguard/api/v1alpha3"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// SpecToHub converts a v1beta1 spec to v2beta1. v1beta1 has the v1alpha3 shape field for
// field, so the spec goes through v1alpha3.SpecToHub (see there for the mapping).
func SpecToHub(in IntentsSpec) (v2beta1.ClientIntentsSpec, error) {
	var alpha3 v1alpha3.IntentsSpec
	if err := recode(in, &alpha3); err != nil {
		return v2beta1.ClientIntentsSpec{}, err
	}
	return v1alpha3.SpecToHub(alpha3), nil
}

// SpecFromHub converts a v2beta1 spec to v1beta1 through v1alpha3.SpecFromHub.
func SpecFromHub(in v2beta1.ClientIntentsSpec) (IntentsSpec, error) {
	var out IntentsSpec
	err := recode(v1alpha3.SpecFromHub(in), &out)
	return out, err
}

// recode copies between two versions of the same shape through their JSON form, fields
// neither knows included. Both shapes always encode and decode, so it fails only on a
// bug, which the conversion tests would show.
func recode(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding %T: %w", in, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding %T: %w", out, err)
	}
	return nil
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
