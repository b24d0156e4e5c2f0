package credentials

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/internal/credentials/backend"
)

// bundleWatch sends every pod asking for a Secret to the Secret controller as soon as
// the trust bundle changes (a next CA published, a rotation, a previous CA gone), so
// that every Secret carries the new bundle within one check interval, whatever its own
// renewal time: a peer holding a certificate from the next CA must be trusted by all
// others before that CA signs. It runs on the elected leader only, like the
// controllers and the CA rotation.
type bundleWatch struct {
	client client.Reader
	issuer backend.Issuer
	every  time.Duration
	out    chan<- event.GenericEvent
}

// Start compares the bundle every interval until ctx ends.
func (w *bundleWatch) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("trust-bundle")
	last, err := w.issuer.BundleID(ctx)
	if err != nil {
		logger.Error(err, "reading the trust bundle; comparing from the next check")
	}
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		id, err := w.issuer.BundleID(ctx)
		if err != nil {
			logger.Error(err, "reading the trust bundle")
			continue
		}
		if id == last {
			continue
		}
		n, err := w.resend(ctx)
		if err != nil {
			logger.Error(err, "re-examining Secrets after a trust bundle change; retrying")
			continue
		}
		logger.Info("trust bundle changed: re-examining every Secret", "from", last, "to", id, "pods", n)
		last = id
	}
}

func (w *bundleWatch) resend(ctx context.Context) (int, error) {
	var pods corev1.PodList
	if err := w.client.List(ctx, &pods, client.MatchingFields{IndexHasSecret: "true"}); err != nil {
		return 0, fmt.Errorf("listing pods asking for credentials: %w", err)
	}
	for i := range pods.Items {
		select {
		case w.out <- event.GenericEvent{Object: &pods.Items[i]}:
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(pods.Items), nil
}
