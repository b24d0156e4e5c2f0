// Package istiocrd holds the Istio CustomResourceDefinition the Istio enforcement point
// writes, AuthorizationPolicy (security.istio.io), as the istio.io/api module ships it,
// and installs it, so that a control plane without Istio (the local one, the tests') can
// store and watch the policies. Ambient mode needs no other: waypoints and ztunnel read
// the same kind.
package istiocrd

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

//go:generate go run ./gen

//go:embed authorizationpolicies.security.istio.io.yaml
var authorizationPolicyYAML []byte

// AuthorizationPolicy returns a fresh copy of the AuthorizationPolicy CRD.
func AuthorizationPolicy() (*apiextensionsv1.CustomResourceDefinition, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(authorizationPolicyYAML, &crd); err != nil {
		return nil, fmt.Errorf("decoding the AuthorizationPolicy CRD: %w", err)
	}
	return &crd, nil
}

// Install creates the AuthorizationPolicy CRD, or updates one of the same name to it, and
// waits until the API server serves it. c needs apiextensions.k8s.io in its scheme.
func Install(ctx context.Context, c client.Client) error {
	want, err := AuthorizationPolicy()
	if err != nil {
		return err
	}
	var have apiextensionsv1.CustomResourceDefinition
	switch err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &have); {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, want); err != nil {
			return fmt.Errorf("creating CRD %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("reading CRD %s: %w", want.Name, err)
	default:
		want.ResourceVersion = have.ResourceVersion
		if err := c.Update(ctx, want); err != nil {
			return fmt.Errorf("updating CRD %s: %w", want.Name, err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &have); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, cond := range have.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CRD %s to be served: %w", want.Name, err)
	}
	return nil
}
