package v2alpha1

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// recode copies between v2alpha1 and v2beta1, which have the same shape, through their
// JSON form; the round-trip tests check that no field is lost.
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

// ConvertTo converts this ClientIntents to the hub version, v2beta1.
func (src *ClientIntents) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	if err := recode(src.Spec, &dst.Spec); err != nil {
		return err
	}
	return recode(src.Status, &dst.Status)
}

// ConvertFrom converts the hub version, v2beta1, to this ClientIntents.
func (dst *ClientIntents) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	if err := recode(src.Spec, &dst.Spec); err != nil {
		return err
	}
	return recode(src.Status, &dst.Status)
}

// ConvertTo converts this ProtectedService to the hub version, v2beta1.
func (src *ProtectedService) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ProtectedService)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	if err := recode(src.Spec, &dst.Spec); err != nil {
		return err
	}
	return recode(src.Status, &dst.Status)
}

// ConvertFrom converts the hub version, v2beta1, to this ProtectedService.
func (dst *ProtectedService) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ProtectedService)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	if err := recode(src.Spec, &dst.Spec); err != nil {
		return err
	}
	return recode(src.Status, &dst.Status)
}
