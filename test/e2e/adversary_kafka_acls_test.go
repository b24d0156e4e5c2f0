package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// kafkaUser is the principal a client workload has on the brokers of this test: the DN
// of the certificate the credentials operator issues it, written out here rather than
// rendered by the code under test (the names used need no escaping).
func kafkaUser(ns, workload string) string {
	return "User:CN=" + workload + "." + ns + ",O=intentguard"
}

// kafkaCall is one kafka target of a client: a broker and the topic operations.
type kafkaCall struct {
	// broker is the target name as written in the intents ("kafka", "kafka.<ns>").
	broker string
	topics []v2beta1.KafkaTopic
}

// kafkaClient is a ClientIntents the test wrote, by its client.
type kafkaClient struct {
	ns, workload string
	calls        []kafkaCall
}

// kafkaAdversary is the broker-ACL part of the adversarial test. A victim namespace runs
// a broker (kfake, ACLs on) described by a KafkaServerConfig with opted-in administrator
// credentials; its workloads declare topic operations; an administrator made ACLs by
// hand on the broker, some identical to what the intents call for. Tenants write
// ConfigMaps that claim to be the operator's ownership records (under every name the
// operator used or uses) with the administrator's and the victims' ACLs in them,
// KafkaServerConfigs that point at the victim broker with their own opted-in
// credentials, and ClientIntents calling the victim broker, under their own names and
// under the victims'. After each step, once the broker settles, it holds exactly the
// administrator's ACLs, the victims' declared ones, and those the tenants' own intents
// declare for the tenants' principals; the victims' Kafka targets stay Enforced and
// nothing of the victims' (Secret, forged-at ConfigMaps) is written.
type kafkaAdversary struct {
	t              *testing.T
	seed           int64
	rnd            *rand.Rand
	replay         string
	b              *kafkatest.Broker
	admin          *broker.Client
	clusterID      string
	victim         string
	tenants        []string
	victimKSC      *v2beta1.KafkaServerConfig
	serverRules    []v2beta1.KafkaServerTopic
	adminACLs      acl.Set
	victimClients  map[string]*kafkaClient
	tenantClients  map[string]*kafkaClient
	tenantConfigs  map[string]*v2beta1.KafkaServerConfig
	forged         map[string]string // "namespace/name" -> resourceVersion the tenant wrote
	victimSecretRV string
	// opConfig is the operator's configuration; stopOperator stops the running one.
	opConfig     operator.Config
	stopOperator func()
	log          []string
	// accepted and refused count the tenant writes; tenantACLs is the most ACLs tenants'
	// declared calls added at once, forgedClaims the ACLs forged records claimed.
	accepted, refused, tenantACLs, forgedClaims, forgeries, tenantConfigsMade int
}

// Topic names and operations the clients pick from: exact names, a prefix, every topic.
var (
	kafkaTopics = []string{"orders", "payments", "audit", "shared", "logs*", "*"}
	kafkaOps    = []v2beta1.KafkaOperation{"produce", "consume", "describe", "all"}
)

func (k *kafkaAdversary) logf(format string, args ...any) {
	k.log = append(k.log, fmt.Sprintf(format, args...))
}

func (k *kafkaAdversary) fail(step int, format string, args ...any) {
	k.t.Helper()
	k.t.Fatalf("seed %d, step %d (replay: %s): %s\nchanges so far:\n%s", k.seed, step, k.replay, fmt.Sprintf(format, args...), strings.Join(k.log, "\n"))
}

func testKafkaACLs(t *testing.T, seed int64, steps int, replay string) {
	k := &kafkaAdversary{t: t, seed: seed, rnd: rand.New(rand.NewSource(seed)), replay: replay,
		victimClients: map[string]*kafkaClient{}, tenantClients: map[string]*kafkaClient{},
		tenantConfigs: map[string]*v2beta1.KafkaServerConfig{}, forged: map[string]string{}}
	k.setup()
	k.check(0)
	for step := 1; step <= steps; step++ {
		k.step(step)
		k.check(step)
	}
	// A last restart: the operator reads its records again, with every forgery in place.
	k.stopOperator()
	k.startOperator()
	k.logf("--- step %d: operator restarted", steps+1)
	k.check(steps + 1)
	t.Logf("%d steps: %d tenant writes accepted, %d refused at admission; %d forged records claimed %d ACLs not theirs; %d tenant KafkaServerConfigs at the victim broker; tenants' declared calls added up to %d ACLs",
		steps, k.accepted, k.refused, k.forgeries, k.forgedClaims, k.tenantConfigsMade, k.tenantACLs)
	for _, key := range sortedKeysOf(k.tenantConfigs) {
		var ksc v2beta1.KafkaServerConfig
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(k.tenantConfigs[key]), &ksc); err == nil {
			if c := apimeta.FindStatusCondition(ksc.Status.Conditions, kafka.ConditionACLsInSync); c != nil {
				t.Logf("tenant KafkaServerConfig %s at the end: %s: %s", key, c.Reason, c.Message)
			}
		}
	}
	if steps >= 10 && (k.forgedClaims == 0 || k.tenantConfigsMade == 0) {
		t.Errorf("seed %d: the run forged no record claiming an ACL, or made no tenant KafkaServerConfig: it tried too little", seed)
	}
}

func (k *kafkaAdversary) setup() {
	t := k.t
	recordNS := env.Namespace(t, "advka-system")
	k.victim = env.Namespace(t, "advka-v0")
	k.tenants = []string{env.Namespace(t, "advka-t0"), env.Namespace(t, "advka-t1")}
	var users []string
	for _, ns := range k.tenants {
		users = append(users, "tenant-"+ns)
	}
	b, err := kafkatest.Start(kafkatest.Options{Users: users, Topics: []string{"orders", "payments", "audit", "shared"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	k.b = b
	mech, err := broker.SASLMechanism(kafkatest.Mechanism, kafkatest.AdminUser, kafkatest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if k.admin, err = broker.New(broker.Config{Addr: b.Addr, SASL: mech}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.admin.Close)
	if k.clusterID, err = k.admin.ClusterID(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The administrator's ACLs, made by hand before the operator runs: one for a principal
	// no intents name, one a victim could also declare, one a tenant could also declare,
	// and the one that lets the first tenant's credentials list ACLs. Sometimes also the
	// very ACL the victim config's topic rule calls for.
	topic := func(p, name string, op acl.Operation, perm acl.Permission) acl.ACL {
		return acl.ACL{Principal: p, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: name, Operation: op, Permission: perm}
	}
	k.adminACLs = acl.NewSet(
		topic("User:ops-admin", "orders", acl.Write, acl.Allow),
		topic(kafkaUser(k.victim, "orders"), "audit", acl.Describe, acl.Allow),
		topic(kafkaUser(k.tenants[0], "app"), "shared", acl.Read, acl.Allow),
		acl.ACL{Principal: kafkaUser(k.tenants[0], "app"), Host: "*", Resource: acl.Group, Pattern: acl.Literal, Name: "app." + k.tenants[0], Operation: acl.Read, Permission: acl.Allow},
		acl.ACL{Principal: "User:tenant-" + k.tenants[0], Host: "*", Resource: acl.Cluster, Pattern: acl.Literal, Name: acl.ClusterName, Operation: acl.Describe, Permission: acl.Allow},
	)
	if k.rnd.Intn(2) == 0 {
		k.adminACLs.Add(topic(acl.Anonymous, "*", acl.All, acl.Deny))
	}
	if _, err := k.admin.Create(context.Background(), k.adminACLs.Sorted()); err != nil {
		t.Fatal(err)
	}
	k.logf("administrator's ACLs: %v", k.adminACLs.Sorted())

	k.opConfig = operator.Config{KafkaACLs: true, MetricsAddr: "0", ProbeAddr: "0", InProcess: true, Kafka: kafka.Options{
		ResyncPeriod: time.Second, MaxBackoff: time.Second, DeleteTimeout: 5 * time.Second, RecordNamespace: recordNS}}
	env.Exclusive(t)
	k.startOperator()
	t.Cleanup(func() { k.stopOperator() })

	// The victim broker: administrator credentials opted in for its address only.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: k.victim, Name: "kafka-admin",
		Labels: map[string]string{kafka.CredentialsLabel: "true"}, Annotations: map[string]string{kafka.CredentialsAddrsAnnotation: b.Addr}},
		StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword}}
	env.Create(t, secret)
	k.victimSecretRV = secret.ResourceVersion
	k.serverRules = []v2beta1.KafkaServerTopic{{Topic: "*", Pattern: v2beta1.KafkaTopicLiteral, ClientIdentityRequired: true}}
	k.victimKSC = &v2beta1.KafkaServerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: k.victim, Name: "kafka"}, Spec: v2beta1.KafkaServerConfigSpec{
		Workload: v2beta1.Workload{Name: "kafka", Kind: "StatefulSet"}, Addr: b.Addr,
		SASL:   &v2beta1.KafkaSASL{Mechanism: kafkatest.Mechanism, SecretName: secret.Name},
		Topics: k.serverRules}}
	env.Create(t, k.victimKSC, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: k.victim, Name: "kafka"}, Spec: v2beta1.ProtectedServiceSpec{Name: "kafka"}})

	// Every tenant has credentials of its own on the broker, opted in.
	for _, ns := range k.tenants {
		env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-creds", Labels: map[string]string{kafka.CredentialsLabel: "true"}},
			StringData: map[string]string{"username": "tenant-" + ns, "password": kafkatest.ClientPassword}})
	}

	// The victims' clients, each with one to three topic operations; "orders" always
	// describes "audit", as the administrator also allowed it by hand.
	for _, w := range []string{"orders", "billing", "reports"} {
		c := &kafkaClient{ns: k.victim, workload: w, calls: []kafkaCall{{broker: "kafka", topics: k.randomTopics()}}}
		if w == "orders" {
			c.calls[0].topics = append(c.calls[0].topics, v2beta1.KafkaTopic{Name: "audit", Operations: []v2beta1.KafkaOperation{"describe"}})
		}
		if err := k.putIntents(c); err != nil {
			k.fail(0, "writing the victim intents of %s: %v", w, err)
		}
		k.victimClients[w] = c
	}
}

// startOperator runs the operator until stopOperator; the test restarts it so that it
// reads its records again, where a forged one would be believed if it were read at all.
func (k *kafkaAdversary) startOperator() {
	cfg := rest.CopyConfig(local.Config)
	cfg.QPS, cfg.Burst = 200, 400
	k.stopOperator = suite.RunManager(k.t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		return operator.New(ctx, cfg, k.opConfig)
	}).Stop
}

func (k *kafkaAdversary) randomTopics() []v2beta1.KafkaTopic {
	var out []v2beta1.KafkaTopic
	seen := map[string]bool{}
	for n := 1 + k.rnd.Intn(3); n > 0; n-- {
		name := kafkaTopics[k.rnd.Intn(len(kafkaTopics))]
		if seen[name] {
			continue
		}
		seen[name] = true
		ops := []v2beta1.KafkaOperation{kafkaOps[k.rnd.Intn(len(kafkaOps))]}
		if o := kafkaOps[k.rnd.Intn(len(kafkaOps))]; o != ops[0] && k.rnd.Intn(2) == 0 {
			ops = append(ops, o)
		}
		out = append(out, v2beta1.KafkaTopic{Name: name, Operations: ops})
	}
	return out
}

func intentsName(workload string) string { return "ci-" + workload }

// putIntents creates or replaces a client's ClientIntents.
func (k *kafkaAdversary) putIntents(c *kafkaClient) error {
	var targets []v2beta1.Target
	for _, call := range c.calls {
		targets = append(targets, v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: call.broker, Topics: call.topics}})
	}
	ctx := context.Background()
	key := client.ObjectKey{Namespace: c.ns, Name: intentsName(c.workload)}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ci v2beta1.ClientIntents
		err := kube.Get(ctx, key, &ci)
		if apierrors.IsNotFound(err) {
			ci = v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
				Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: c.workload}, Targets: targets}}
			return kube.Create(ctx, &ci)
		}
		if err != nil {
			return err
		}
		ci.Spec.Targets = targets
		return kube.Update(ctx, &ci)
	})
	if err == nil {
		var calls []string
		for _, call := range c.calls {
			var topics []string
			for _, tp := range call.topics {
				topics = append(topics, fmt.Sprintf("%s:%v", tp.Name, tp.Operations))
			}
			calls = append(calls, call.broker+" "+strings.Join(topics, " "))
		}
		k.logf("intents %s/%s -> %s", c.ns, c.workload, strings.Join(calls, "; "))
	}
	return err
}

// tenantWrite counts a tenant write, runs record if the API server took it, and logs a
// refusal otherwise.
func (k *kafkaAdversary) tenantWrite(step int, err error, record func()) {
	if err != nil {
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
			k.fail(step, "a tenant write failed other than by refusal: %v", err)
		}
		k.refused++
		k.logf("tenant write refused: %v", err)
		return
	}
	k.accepted++
	record()
}

// step makes one tenant write.
func (k *kafkaAdversary) step(step int) {
	ctx := context.Background()
	ns := k.tenants[k.rnd.Intn(len(k.tenants))]
	k.logf("--- step %d", step)
	switch op := k.rnd.Intn(11); {
	case op == 10:
		k.stopOperator()
		k.startOperator()
		k.logf("operator restarted")
	case op < 4:
		// ClientIntents calling the victim broker (and sometimes a broker of the tenant's
		// own), as one of its workloads, as a victim's workload name, or as the workload
		// the administrator gave ACLs to.
		names := []string{"app", "web", "orders", "billing", "reports"}
		c := &kafkaClient{ns: ns, workload: names[k.rnd.Intn(len(names))]}
		c.calls = append(c.calls, kafkaCall{broker: "kafka." + k.victim, topics: k.randomTopics()})
		if c.workload == "app" && k.rnd.Intn(2) == 0 {
			c.calls[0].topics = append(c.calls[0].topics, v2beta1.KafkaTopic{Name: "shared", Operations: []v2beta1.KafkaOperation{"consume"}})
		}
		if k.rnd.Intn(3) == 0 {
			own := []string{"kafka", "broker"}
			c.calls = append(c.calls, kafkaCall{broker: own[k.rnd.Intn(len(own))], topics: k.randomTopics()})
		}
		k.tenantWrite(step, k.putIntents(c), func() { k.tenantClients[c.ns+"/"+c.workload] = c })
	case op == 4:
		keys := sortedKeysOf(k.tenantClients)
		if len(keys) == 0 {
			return
		}
		c := k.tenantClients[keys[k.rnd.Intn(len(keys))]]
		deleteObj(k.t, &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: intentsName(c.workload)}})
		delete(k.tenantClients, c.ns+"/"+c.workload)
		k.logf("tenant deletes intents %s/%s", c.ns, c.workload)
	case op < 7:
		k.forge(step, ns)
	case op < 9:
		// A KafkaServerConfig of the tenant's, at the victim broker's address, with the
		// tenant's own credentials; its workload name is the victim broker's or another.
		names := []string{"kafka", "broker"}
		name := names[k.rnd.Intn(len(names))]
		key := ns + "/" + name
		if old, ok := k.tenantConfigs[key]; ok {
			deleteObj(k.t, old)
			delete(k.tenantConfigs, key)
			k.logf("tenant deletes KafkaServerConfig %s", key)
			return
		}
		ksc := &v2beta1.KafkaServerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v2beta1.KafkaServerConfigSpec{
			Workload: v2beta1.Workload{Name: name}, Addr: k.b.Addr,
			SASL: &v2beta1.KafkaSASL{Mechanism: kafkatest.Mechanism, SecretName: "kafka-creds"}}}
		if k.rnd.Intn(2) == 0 {
			ksc.Spec.Topics = []v2beta1.KafkaServerTopic{{Topic: "orders", Pattern: v2beta1.KafkaTopicLiteral, IntentsRequired: ptrTo(false)}}
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(ksc), &v2beta1.KafkaServerConfig{}); err == nil {
			return // the previous one is still being deleted
		}
		k.tenantWrite(step, kube.Create(ctx, ksc), func() {
			k.tenantConfigs[key] = ksc
			k.tenantConfigsMade++
			k.logf("tenant KafkaServerConfig %s at the victim broker, topics %+v", key, ksc.Spec.Topics)
		})
	case op == 9:
		// The victim broker's ProtectedService, respelt in a tenant namespace: it protects
		// the tenant's own "kafka", if anything.
		ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka"}, Spec: v2beta1.ProtectedServiceSpec{Name: "kafka"}}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(ps), &v2beta1.ProtectedService{}); err == nil {
			deleteObj(k.t, ps)
			k.logf("tenant deletes ProtectedService %s/kafka", ns)
			return
		}
		k.tenantWrite(step, kube.Create(ctx, ps), func() { k.logf("tenant protects %s/kafka", ns) })
	}
}

func ptrTo[T any](v T) *T { return &v }

func sortedKeysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for key := range m {
		out = append(out, key)
	}
	sort.Strings(out)
	return out
}

// forge writes a ConfigMap in a tenant or the victim namespace that claims to be the
// operator's ownership record of a KafkaServerConfig: under the name earlier versions
// used (next to the config), under the name the operator uses now (in its own namespace,
// where tenants cannot write), for the victim config or a tenant's, with the labels and
// annotations the operator writes, claiming the administrator's ACLs, the victims'
// ones, or none (which would make the victims' ACLs permanent).
func (k *kafkaAdversary) forge(step int, tenantNS string) {
	ctx := context.Background()
	var victimKSC v2beta1.KafkaServerConfig
	if err := kube.Get(ctx, client.ObjectKeyFromObject(k.victimKSC), &victimKSC); err != nil {
		k.t.Fatal(err)
	}
	subject := &victimKSC
	if keys := sortedKeysOf(k.tenantConfigs); len(keys) > 0 && k.rnd.Intn(3) == 0 {
		var own v2beta1.KafkaServerConfig
		if err := kube.Get(ctx, client.ObjectKeyFromObject(k.tenantConfigs[keys[k.rnd.Intn(len(keys))]]), &own); err == nil {
			subject = &own
		}
	}
	names := []string{"kafka-acls." + subject.Name, kafka.OwnedConfigMapName(subject.UID), "kafka-acls-" + string(subject.UID[:8])}
	ns := []string{tenantNS, k.victim}[k.rnd.Intn(2)]
	name := names[k.rnd.Intn(len(names))]
	var claimed []acl.ACL
	switch k.rnd.Intn(3) {
	case 0:
		claimed = k.adminACLs.Sorted()
	case 1:
		claimed = append(k.adminACLs.Sorted(), k.declared(k.victimClients).Sorted()...)
	default:
		// Claiming nothing would make the victims' ACLs permanent; the first forgery
		// claims the administrator's, so that every run tries that.
		if k.forgeries == 0 {
			claimed = k.adminACLs.Sorted()
		}
	}
	k.forgedClaims += len(claimed)
	data, err := forgedRecordData(claimed)
	if err != nil {
		k.t.Fatal(err)
	}
	// The annotations the operator writes now, or those earlier versions wrote (the
	// config's UID where the name now is).
	ann := map[string]string{kafka.BrokerAnnotation: subject.Namespace + "/" + subject.Name, kafka.BrokerUIDAnnotation: string(subject.UID), kafka.ClusterIDAnnotation: k.clusterID}
	if k.rnd.Intn(2) == 0 {
		ann = map[string]string{kafka.BrokerAnnotation: string(subject.UID), kafka.ClusterIDAnnotation: ""}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{ownership.Label: ownership.IntentsOperator}, Annotations: ann},
		BinaryData: map[string][]byte{"owned.json.gz": data}}
	key := ns + "/" + name
	err = kube.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		var cur corev1.ConfigMap
		if err := kube.Get(ctx, client.ObjectKeyFromObject(cm), &cur); err != nil {
			k.t.Fatal(err)
		}
		cm.ResourceVersion = cur.ResourceVersion
		err = kube.Update(ctx, cm)
	}
	k.tenantWrite(step, err, func() {
		k.forgeries++
		k.forged[key] = cm.ResourceVersion
		k.logf("forged record %s for %s/%s claiming %d ACLs", key, subject.Namespace, subject.Name, len(claimed))
	})
}

// forgedRecordData encodes ACLs the way the operator's records hold them.
func forgedRecordData(acls []acl.ACL) ([]byte, error) {
	rows := make([][7]string, 0, len(acls))
	for _, a := range acls {
		rows = append(rows, [7]string{a.Principal, a.Host, string(a.Resource), string(a.Pattern), a.Name, string(a.Operation), string(a.Permission)})
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// declared is the oracle: the ACLs the clients' calls to the victim broker call for,
// derived from the test's own bookkeeping (produce is Write, consume Read plus the
// client's consumer group "<workload>.<namespace>", "*" every topic, "x*" a prefix).
func (k *kafkaAdversary) declared(clients map[string]*kafkaClient) acl.Set {
	ops := map[v2beta1.KafkaOperation]acl.Operation{"produce": acl.Write, "consume": acl.Read, "describe": acl.Describe, "all": acl.All}
	out := acl.Set{}
	for _, c := range clients {
		p := kafkaUser(c.ns, c.workload)
		for _, call := range c.calls {
			name, ns, ok := strings.Cut(call.broker, ".")
			if !ok {
				ns = c.ns
			}
			if name != "kafka" || ns != k.victim {
				continue
			}
			for _, tp := range call.topics {
				topic, pattern := tp.Name, acl.Literal
				if tp.Name != "*" && strings.HasSuffix(tp.Name, "*") {
					topic, pattern = strings.TrimSuffix(tp.Name, "*"), acl.Prefixed
				}
				for _, op := range tp.Operations {
					out.Add(acl.ACL{Principal: p, Host: "*", Resource: acl.Topic, Pattern: pattern, Name: topic, Operation: ops[op], Permission: acl.Allow})
					if op == "consume" || op == "all" {
						out.Add(acl.ACL{Principal: p, Host: "*", Resource: acl.Group, Pattern: acl.Literal, Name: c.workload + "." + c.ns, Operation: acl.Read, Permission: acl.Allow})
					}
				}
			}
		}
	}
	return out
}

// oracle is the set of ACLs the broker must hold.
func (k *kafkaAdversary) oracle() acl.Set {
	want := acl.Set{}
	for a := range k.adminACLs {
		want.Add(a)
	}
	for _, r := range k.serverRules {
		if r.ClientIdentityRequired {
			want.Add(acl.ACL{Principal: acl.Anonymous, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: r.Topic, Operation: acl.All, Permission: acl.Deny})
		}
	}
	for a := range k.declared(k.victimClients) {
		want.Add(a)
	}
	for a := range k.declared(k.tenantClients) {
		want.Add(a)
	}
	return want
}

// aclProblem describes how the broker's ACLs differ from the oracle, naming whose each
// wrong ACL is, or returns "".
func (k *kafkaAdversary) aclProblem(want, got acl.Set) string {
	whose := func(a acl.ACL) string {
		switch {
		case k.adminACLs.Has(a):
			return "the administrator's"
		case strings.HasSuffix(a.Principal, "."+k.victim+",O=intentguard"):
			return "a victim's"
		}
		for _, ns := range k.tenants {
			if strings.Contains(a.Principal, ns) {
				return "tenant " + ns + "'s"
			}
		}
		return "nobody's"
	}
	var lines []string
	for _, a := range want.Sorted() {
		if !got.Has(a) {
			lines = append(lines, fmt.Sprintf("missing %s ACL: %s", whose(a), a))
		}
	}
	for _, a := range got.Sorted() {
		if !want.Has(a) {
			lines = append(lines, fmt.Sprintf("extra %s ACL: %s", whose(a), a))
		}
	}
	return strings.Join(lines, "\n")
}

// victimStateProblem says which victim Kafka target is not Enforced at the current
// generation, or returns "".
func (k *kafkaAdversary) victimStateProblem() string {
	for _, w := range sortedKeysOf(k.victimClients) {
		var ci v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: k.victim, Name: intentsName(w)}, &ci); err != nil {
			return fmt.Sprintf("victim intents %s: %v", w, err)
		}
		if ci.Status.ObservedGeneration != ci.Generation {
			return fmt.Sprintf("victim intents %s: status of generation %d, now %d", w, ci.Status.ObservedGeneration, ci.Generation)
		}
		seen := 0
		for _, st := range ci.Status.Targets {
			if st.Point != kafka.PointName {
				continue
			}
			seen++
			if st.State != string(enforcement.Enforced) {
				return fmt.Sprintf("victim intents %s: Kafka target %s is %s (%s)", w, st.Target, st.State, st.Message)
			}
		}
		if seen != 1 {
			return fmt.Sprintf("victim intents %s report %d Kafka targets, want 1: %+v", w, seen, ci.Status.Targets)
		}
	}
	return ""
}

// untouchedProblem says which object of the victims' or forged by a tenant the operator
// wrote or deleted, or returns "".
func (k *kafkaAdversary) untouchedProblem() string {
	ctx := context.Background()
	var s corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: k.victim, Name: "kafka-admin"}, &s); err != nil || s.ResourceVersion != k.victimSecretRV {
		return fmt.Sprintf("the victim broker's Secret was written or deleted (err %v, resourceVersion %s, was %s)", err, s.ResourceVersion, k.victimSecretRV)
	}
	for _, key := range sortedKeysOf(k.forged) {
		ns, name, _ := strings.Cut(key, "/")
		var cm corev1.ConfigMap
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm); err != nil || cm.ResourceVersion != k.forged[key] {
			return fmt.Sprintf("the tenant's ConfigMap %s was written or deleted by the operator (err %v, resourceVersion %s, was %s)", key, err, cm.ResourceVersion, k.forged[key])
		}
	}
	return ""
}

// check waits until the broker holds the oracle's ACLs and the victims' targets are
// Enforced, then holds both to it for longer than a resync period: a forged record, a
// tenant's config or a fight between configs would show as a change there.
func (k *kafkaAdversary) check(step int) {
	ctx := context.Background()
	want := k.oracle()
	problem := func() string {
		got, err := k.admin.List(ctx)
		if err != nil {
			return fmt.Sprintf("listing the broker's ACLs: %v", err)
		}
		if p := k.aclProblem(want, got); p != "" {
			return "the broker's ACLs differ from the administrator's, the victims' declared and the tenants' declared ones:\n" + p
		}
		if p := k.victimStateProblem(); p != "" {
			return p
		}
		return k.untouchedProblem()
	}
	deadline := time.Now().Add(30 * time.Second)
	p := problem()
	for p != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		p = problem()
	}
	if p != "" {
		k.fail(step, "not settled after 30s: %s", p)
	}
	for hold := time.Now().Add(1200 * time.Millisecond); time.Now().Before(hold); {
		time.Sleep(200 * time.Millisecond)
		if p := problem(); p != "" {
			k.fail(step, "after settling: %s", p)
		}
	}
	k.tenantACLs = max(k.tenantACLs, len(k.declared(k.tenantClients)))
}
