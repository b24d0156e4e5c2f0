package v2alpha1

import (
	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// ConvertTo converts this ClientIntents to the hub version, v2beta1; the shapes are the same.
func (src *ClientIntents) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = *src.Spec.DeepCopy()
	dst.Status = *src.Status.DeepCopy()
	return nil
}

// ConvertFrom converts the hub version, v2beta1, to this ClientIntents.
func (dst *ClientIntents) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v2beta1.ClientIntents)
	dst.ObjectMeta = *src.ObjectMeta.DeepCopy()
	dst.Spec = *src.Spec.DeepCopy()
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
