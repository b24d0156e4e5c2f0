// Package enforcement is the small interface between the ClientIntents status and the
// enforcement points (NetworkPolicies, Kafka ACLs, ...): each point reports, per target,
// exactly what it enforces, and the status controller only reads those reports.
package enforcement

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// State is what an enforcement point does for one target.
type State string

const (
	// Enforced: the point allows the declared calls and denies the rest.
	Enforced State = "Enforced"
	// Shadow: the point computes but does not enforce (shadow mode, no ProtectedService).
	Shadow State = "Shadow"
	// Waiting: enforcement is on its way or blocked by something outside the intents
	// (a namespace, a Service, a broker); the message says what.
	Waiting State = "Waiting"
	// Failed: the point could not enforce and will not until something changes; the
	// message says what.
	Failed State = "Failed"
	// NotEnforced: no enforcement point handles the target (internet targets, say).
	NotEnforced State = "NotEnforced"
)

// TargetState is what one enforcement point does for one target of a ClientIntents.
type TargetState struct {
	// Target names the target as the intents wrote it ("server", "kafka.kafka").
	Target string
	// State is what is done for it.
	State State
	// Message says why, and what the user can do, when State is not Enforced.
	Message string
}

// Point is one enforcement point as the ClientIntents status sees it.
type Point interface {
	// Name is the point's name in status ("NetworkPolicy", "KafkaACL").
	Name() string
	// Report returns the state of each target of ci that this point handles, and nothing
	// for the targets it does not handle. It reads caches only; it never writes.
	Report(ctx context.Context, ci *v2beta1.ClientIntents) ([]TargetState, error)
}

// Notifier is implemented by points whose state changes without an event on the
// ClientIntents itself (a broker coming back, say): the status controller watches the
// channel and recomputes the status of each ClientIntents sent on it.
type Notifier interface {
	Changes() <-chan event.TypedGenericEvent[*v2beta1.ClientIntents]
}
