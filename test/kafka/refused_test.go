package kafka_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// A broker that answers but refuses the rights of the config's credentials (a user who may
// not manage ACLs) is reported as refusing, not as unreachable: the fix is the
// credentials, not the address or the network. (A wrong password is the same case on
// Apache Kafka, which answers SASL_AUTHENTICATION_FAILED; the test broker closes the
// connection instead, so that half is covered by TestBrokerRefusalIsNotUnreachable.)
func TestBrokerRefusingTheCredentialsIsSaidSo(t *testing.T) {
	ns := env.Namespace(t, "kafka-refused")
	b := startBroker(t, kafkatest.Options{Users: []string{"app"}, Topics: []string{"a"}})
	startOperator(t, enforcement.Options{})
	for name, password := range map[string]string{"not-admin": kafkatest.ClientPassword} {
		env.Create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: optIn},
			StringData: map[string]string{"username": "app", "password": password},
		})
		ksc := tenantConfig(t, ns, name, b.Addr, fmt.Sprintf("  sasl: {mechanism: PLAIN, secretName: %s}", name))
		suite.WaitFor(t, name+": Connected=False with reason BrokerRefused, Ready=False with reason Failed", 30*time.Second, func() (bool, error) {
			conds := getKSC(t, ksc).Status.Conditions
			connected := apimeta.FindStatusCondition(conds, kafka.ConditionConnected)
			if connected == nil || connected.Reason != kafka.ReasonBrokerRefused || !strings.Contains(connected.Message, "refused the credentials") {
				return false, fmt.Errorf("Connected %+v", connected)
			}
			ready := apimeta.FindStatusCondition(conds, enforcement.ConditionReady)
			if ready == nil || ready.Reason != enforcement.ReasonFailed || !strings.Contains(ready.Message, "refused the credentials") ||
				!apimeta.IsStatusConditionTrue(conds, enforcement.ConditionStalled) {
				return false, fmt.Errorf("Ready %+v, Stalled %+v", ready, apimeta.FindStatusCondition(conds, enforcement.ConditionStalled))
			}
			return true, nil
		})
	}
}
