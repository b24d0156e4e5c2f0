// Package enforcement is the small interface between status and the enforcement points
// (NetworkPolicies, Kafka ACLs, ...): each point records, per target, what it enforces,
// and status only reads those records. It also holds what every point shares: the
// roll-out settings and the condition vocabulary.
package enforcement

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
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

// TargetState is what one enforcement point recorded for one target of a ClientIntents,
// or for the server a ProtectedService names.
type TargetState struct {
	// Target names the target as the intents wrote it ("server", "kafka.kafka").
	Target string
	// State is what is done for it.
	State State
	// Message says why, and what the user can do, when State is not Enforced.
	Message string
	// Object names the object that enforces the target (a NetworkPolicy), once it does.
	Object string
	// Missing is true when the target was not found in the cluster.
	Missing bool
	// InHand is true for a Waiting target whose change the point has seen and is still
	// carrying out: status says nothing about it until the wait lasts.
	InHand bool
	// Since is when the point took that change in hand; zero when InHand is false.
	Since time.Time
}

// PendingAfter is how long a change an enforcement point has in hand may take before
// status reports the wait: a shorter wait would cost a status write and an Event per
// object in every burst, for a state that is over a moment later.
const PendingAfter = 10 * time.Second

// Point is one enforcement point as status sees it. Every method reads what the point
// recorded; none computes enforcement again or writes.
type Point interface {
	// Name is the point's name in status ("NetworkPolicy", "KafkaACL").
	Name() string
	// Outcomes returns what the point recorded for each target of ci that it handles, and
	// nothing for the targets it does not handle.
	Outcomes(ctx context.Context, ci *v2beta1.ClientIntents) ([]TargetState, error)
	// Protection returns what the point recorded for the server ps names, when the point
	// protects servers that way, else nothing.
	Protection(ctx context.Context, ps *v2beta1.ProtectedService) ([]TargetState, error)
	// Subscribe returns a new channel on which the point sends each ClientIntents and
	// ProtectedService (namespace and name only) whose recorded outcome changed.
	Subscribe() <-chan event.TypedGenericEvent[client.Object]
}
