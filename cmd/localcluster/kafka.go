package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/principal"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
)

// The public Kafka tutorial's objects.
const (
	kafkaTutorialNamespace = "otterize-tutorial-kafka-mtls"
	kafkaTutorialIntents   = `
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: client, namespace: otterize-tutorial-kafka-mtls}
spec:
  workload: {name: client}
  targets:
  - kafka:
      name: kafka.kafka
      topics:
      - {name: mytopic, operations: [produce, describe, consume]}
      - {name: transactions, operations: [produce, describe, consume]}
`
)

func demoKafkaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo-kafka",
		Short: "Run the Kafka tutorial against a local broker with ACLs on, and show who may produce and consume",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			client, other := tutorialUser("client"), tutorialUser("client-other")
			b, err := kafkatest.Start(kafkatest.Options{Users: []string{client, other}, Topics: []string{"mytopic", "transactions"}})
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Printf("Kafka-protocol broker (in process, SASL and ACLs on) at %s\n", b.Addr)
			fmt.Printf("its clients authenticate as the principals of their certificates:\n  %s\n  %s\n", client, other)
			s, err := start(ctx, enforcement.Options{Shadow: true}, false)
			if err != nil {
				return err
			}
			defer s.stop()
			fmt.Println("operator in shadow mode: the ProtectedService below is what turns the broker's enforcement on")
			return runKafkaTutorial(ctx, s.client, b)
		},
	}
}

func tutorialUser(workload string) string {
	dn, err := principal.DN(principal.Subject(identity.Identity{Namespace: kafkaTutorialNamespace, Name: workload}, principal.Organization))
	if err != nil {
		panic(err)
	}
	return dn
}

func runKafkaTutorial(ctx context.Context, c client.Client, b *kafkatest.Broker) error {
	for _, ns := range []string{"kafka", kafkaTutorialNamespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "kafka-operator-credentials", Labels: map[string]string{kafka.CredentialsLabel: "true"}},
		StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword},
	}
	ksc := &v2beta1.KafkaServerConfig{}
	ps := &v2beta1.ProtectedService{}
	ci := &v2beta1.ClientIntents{}
	docs := []struct {
		doc string
		obj client.Object
	}{
		{fmt.Sprintf(`
apiVersion: k8s.otterize.com/v2beta1
kind: KafkaServerConfig
metadata: {name: kafka, namespace: kafka}
spec:
  workload: {name: kafka, kind: StatefulSet}
  addr: %q
  sasl: {mechanism: PLAIN, secretName: kafka-operator-credentials}
`, b.Addr), ksc},
		{`
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: kafka, namespace: kafka}
spec: {name: kafka}
`, ps},
		{kafkaTutorialIntents, ci},
	}
	if err := c.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating the broker credentials: %w", err)
	}
	for _, d := range docs {
		if err := yaml.UnmarshalStrict([]byte(d.doc), d.obj); err != nil {
			return err
		}
		fmt.Printf("\napplying:%s", d.doc)
		if err := c.Create(ctx, d.obj); err != nil {
			return fmt.Errorf("creating %T: %w", d.obj, err)
		}
	}
	t0 := time.Now()
	var got v2beta1.KafkaServerConfig
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ksc), &got); err != nil {
			return false, err
		}
		return got.Status.Enforced && got.Status.OwnedACLs == 7 && apimeta.IsStatusConditionTrue(got.Status.Conditions, kafka.ConditionACLsInSync), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the broker's ACLs (status: %+v): %w", got.Status, err)
	}
	fmt.Printf("\nKafkaServerConfig kafka/kafka in sync %s after the intents were accepted:\n", time.Since(t0).Round(time.Millisecond))
	for _, cond := range got.Status.Conditions {
		fmt.Printf("  %s=%s: %s\n", cond.Type, cond.Status, cond.Message)
	}

	mech, err := broker.SASLMechanism(kafkatest.Mechanism, kafkatest.AdminUser, kafkatest.AdminPassword)
	if err != nil {
		return err
	}
	admin, err := broker.New(broker.Config{Addr: b.Addr, SASL: mech})
	if err != nil {
		return err
	}
	defer admin.Close()
	acls, err := admin.List(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\nACLs on the broker (%d):\n", len(acls))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  principal\tresource\tpattern\tname\toperation\tpermission")
	for _, a := range acls.Sorted() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Resource, a.Pattern, a.Name, a.Operation, a.Permission)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Println("\nreal Kafka clients against the broker:")
	ok := true
	check := func(who, what string, err error, wantAllowed bool) {
		verdict := "allowed"
		if err != nil {
			verdict = "denied: " + firstLine(err.Error())
		}
		// A denial must be the broker's authorization refusal, not any failure.
		if wantAllowed && err != nil || !wantAllowed && !kafkatest.Denied(err) {
			ok = false
			verdict += "   <-- unexpected"
		}
		fmt.Printf("  %-13s %-26s %s\n", who, what, verdict)
	}
	client, other := tutorialUser("client"), tutorialUser("client-other")
	for _, topic := range []string{"mytopic", "transactions"} {
		check("client", "produce "+topic, b.Produce(ctx, client, topic, "hello"), true)
		check("client", "consume "+topic, b.Consume(ctx, client, topic, "client."+kafkaTutorialNamespace, "hello"), true)
		check("client-other", "produce "+topic, b.Produce(ctx, other, topic, "hello"), false)
		check("client-other", "consume "+topic, b.Consume(ctx, other, topic, "client-other."+kafkaTutorialNamespace, "hello"), false)
	}
	if !ok {
		return errors.New("unexpected result: want client allowed and client-other denied")
	}
	fmt.Println("\nresult: client produces and consumes, client-other is not authorized, as declared")
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
