package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// A broker that answered with a refusal is reported as refusing, with what fixes it; one
// that did not answer stays unreachable. The errors come wrapped as the broker adapter
// wraps them, and joined as a batch's errors are.
func TestBrokerRefusalIsNotUnreachable(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("listing ACLs: %w", kerr.ClusterAuthorizationFailed), "BrokerRefused"},
		{fmt.Errorf("reading the cluster ID: %w", kerr.SaslAuthenticationFailed), "BrokerRefused"},
		{errors.Join(errors.New("creating 2 ACLs"), fmt.Errorf("acl 1: %w", kerr.ClusterAuthorizationFailed)), "BrokerRefused"},
		{fmt.Errorf("listing ACLs: %w", kerr.RequestTimedOut), "BrokerUnreachable"},
		{fmt.Errorf("listing ACLs: %w", context.DeadlineExceeded), "BrokerUnreachable"},
		{errors.New("dial tcp 10.0.0.1:9092: connect: connection refused"), "BrokerUnreachable"},
	}
	for _, c := range cases {
		reason, detail := brokerFailure(c.err)
		if reason != c.want {
			t.Errorf("%v: reason %s, want %s", c.err, reason, c.want)
		}
		if (reason == "BrokerRefused") != (detail != "") {
			t.Errorf("%v: reason %s with detail %q", c.err, reason, detail)
		}
	}
}
