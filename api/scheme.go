// Package api registers every served version of the k8s.otterize.com API. v2beta1 is the
// hub: the API server stores it, the controllers read it, and the other versions convert
// through it (each version package's conversion.go). The older versions reuse the v2beta1
// types wherever their shape is the same (HTTP resources, Kafka topics, internet
// targets, status), so a value is validated the same way whatever version it is written
// in. A new kind in these packages is
// registered here with its package, and converts as soon as its types implement
// conversion.Convertible (or conversion.Hub in v2beta1).
package api

import (
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/intentguard/intentguard/api/v1alpha2"
	"github.com/intentguard/intentguard/api/v1alpha3"
	"github.com/intentguard/intentguard/api/v1beta1"
	"github.com/intentguard/intentguard/api/v2alpha1"
	"github.com/intentguard/intentguard/api/v2beta1"
)

// AddToScheme registers every version, hub first.
func AddToScheme(s *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{
		v2beta1.AddToScheme, v2alpha1.AddToScheme, v1beta1.AddToScheme, v1alpha3.AddToScheme, v1alpha2.AddToScheme,
	} {
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}
