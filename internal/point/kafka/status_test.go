package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
)

// A broker that answered with a refusal is reported as refusing, with what fixes it; one
// that did not answer stays unreachable. The errors come wrapped as the broker adapter
// wraps them, and joined as a batch's errors are.
func TestBrokerRefusalIsNotUnreachable(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("listing ACLs: %w", kerr.ClusterAuthorizationFailed), ReasonBrokerRefused},
		{fmt.Errorf("reading the cluster ID: %w", kerr.SaslAuthenticationFailed), ReasonBrokerRefused},
		{errors.Join(errors.New("creating 2 ACLs"), fmt.Errorf("acl 1: %w", kerr.ClusterAuthorizationFailed)), ReasonBrokerRefused},
		{fmt.Errorf("listing ACLs: %w", kerr.RequestTimedOut), ReasonBrokerUnreachable},
		{fmt.Errorf("listing ACLs: %w", context.DeadlineExceeded), ReasonBrokerUnreachable},
		{errors.New("dial tcp 10.0.0.1:9092: connect: connection refused"), ReasonBrokerUnreachable},
	}
	for _, c := range cases {
		reason, detail := brokerFailure(c.err)
		if reason != c.want {
			t.Errorf("%v: reason %s, want %s", c.err, reason, c.want)
		}
		if (reason == ReasonBrokerRefused) != (detail != "") {
			t.Errorf("%v: reason %s with detail %q", c.err, reason, detail)
		}
	}
}

// Each outcome of a sync reads, on the KafkaServerConfig, in the vocabulary ClientIntents
// and ProtectedService share (Ready with Reconciling or Stalled beside it), with Connected
// and ACLsInSync saying why; and a recovery removes Reconciling and Stalled again.
func TestStatusSpeaksTheSharedVocabulary(t *testing.T) {
	refused := fmt.Errorf("listing ACLs: %w", kerr.ClusterAuthorizationFailed)
	cases := []struct {
		name                 string
		st                   syncState
		ready, connected, in string // reasons; "" when the condition must be absent
		readyTrue, inTrue    bool
	}{
		{"enforced", syncState{enforced: true, inSync: true}, enforcement.ReasonReconciled, ReasonConnected, enforcement.ReasonEnforced, true, true},
		{"shadow", syncState{}, enforcement.ReasonReconciled, ReasonConnected, enforcement.ReasonShadow, true, true},
		{"config error", syncState{configErr: errors.New("Secret s is not labelled")}, enforcement.ReasonFailed, "", ReasonConfigError, false, false},
		{"API error", syncState{apiErr: errors.New("writing the record")}, enforcement.ReasonPending, "", ReasonAPIError, false, false},
		{"refused", syncState{brokerErr: refused}, enforcement.ReasonFailed, ReasonBrokerRefused, ReasonBrokerRefused, false, false},
		{"unreachable", syncState{brokerErr: errors.New("dial tcp: connection refused")}, enforcement.ReasonPending, ReasonBrokerUnreachable, ReasonBrokerUnreachable, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ksc := &v2beta1.KafkaServerConfig{}
			ksc.Generation, c.st.generation = 3, 3
			// A config that was stalled before must lose Stalled when it recovers, and
			// the other way round.
			enforcement.SetReadiness(&ksc.Status.Conditions, enforcement.ReasonFailed, "before", 2)
			setStatus(ksc, c.st)
			conds := ksc.Status.Conditions
			ready := apimeta.FindStatusCondition(conds, enforcement.ConditionReady)
			if ready == nil || ready.Reason != c.ready || (ready.Status == metav1.ConditionTrue) != c.readyTrue || ready.ObservedGeneration != 3 {
				t.Fatalf("Ready %+v, want reason %s, true=%v", ready, c.ready, c.readyTrue)
			}
			if got := apimeta.IsStatusConditionTrue(conds, enforcement.ConditionStalled); got != (c.ready == enforcement.ReasonFailed) {
				t.Errorf("Stalled true=%v with Ready reason %s", got, c.ready)
			}
			if got := apimeta.IsStatusConditionTrue(conds, enforcement.ConditionReconciling); got != (c.ready == enforcement.ReasonPending) {
				t.Errorf("Reconciling true=%v with Ready reason %s", got, c.ready)
			}
			connected := apimeta.FindStatusCondition(conds, ConditionConnected)
			if c.connected == "" && connected != nil || c.connected != "" && (connected == nil || connected.Reason != c.connected) {
				t.Errorf("Connected %+v, want reason %q", connected, c.connected)
			}
			in := apimeta.FindStatusCondition(conds, ConditionACLsInSync)
			if in == nil || in.Reason != c.in || (in.Status == metav1.ConditionTrue) != c.inTrue {
				t.Errorf("ACLsInSync %+v, want reason %s, true=%v", in, c.in, c.inTrue)
			}
		})
	}
}
