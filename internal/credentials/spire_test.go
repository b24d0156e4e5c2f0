package credentials_test

import (
	"context"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/credentials/spire"
	"github.com/intentguard/intentguard/internal/testsupport/spiretest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// TestSPIREBackend runs the operator against a real spire-server: the Secret holds an
// SVID from SPIRE that verifies against SPIRE's bundle, the workload has an entry
// selected by its namespace and service account, and the entry goes when the workload
// goes, even while the operator was not running.
func TestSPIREBackend(t *testing.T) {
	ctx := context.Background()
	bin, err := spiretest.Binary(ctx)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("spire-server could not be built, and CI must test the SPIRE backend: %v", err)
		}
		t.Skipf("spire-server could not be built, so the SPIRE backend is not tested: %v", err)
	}
	srv, err := spiretest.Start(ctx, bin, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	ns := env.Namespace(t, "creds-spire")
	cfg := testConfig(ns)
	cfg.Backend = credentials.BackendSPIRE
	cfg.SPIRESocket = srv.Socket
	cfg.TrustDomain = "example.org"
	cfg.SPIREParentID = "spiffe://example.org/intentguard/test-cluster"
	cfg.ClusterName = "test-cluster"
	_, stop := startOperator(t, cfg)

	env.Create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-sa"}})
	// A workload asking for another namespace's name gets neither an SVID nor an entry.
	squat := map[string]string{ann + "tls-secret-name": "squat-tls", ann + "dns-names": "kafka.kafka.svc.cluster.local,*.com"}
	deploymentWithSA(t, ns, "squat", "orders-sa", squat)
	podEvent(t, ns, credentials.ReasonDNSNameRefused)
	a := map[string]string{ann + "tls-secret-name": "orders-tls", ann + "cert-ttl": "600", ann + "dns-names": "orders." + ns + ".svc"}
	d := deploymentWithSA(t, ns, "orders", "orders-sa", a)

	s := secret(t, ns, "orders-tls")
	p := parsed(t, s, a, nil)
	verify(t, p.Chain, p.Roots)
	spiffeID := "spiffe://example.org/otterize/namespace/" + ns + "/service/orders"
	if leaf := p.Chain[0]; len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID {
		t.Errorf("URI SANs %v, want %s", leaf.URIs, spiffeID)
	}
	if got, want := subjectRDNs(t, p.Chain[0]), "[[{2.5.4.10 intentguard}] [{2.5.4.3 orders."+ns+"}]]"; got != want {
		t.Errorf("subject RDNs of the SPIRE certificate %s, want %s", got, want)
	}

	parent, _ := url.Parse(cfg.SPIREParentID)
	reader, err := spire.Dial(spire.Config{SocketPath: srv.Socket, ParentID: parent, EntryIDPrefix: "intentguard-test-cluster"})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var entries []spire.Entry
	suite.WaitFor(t, "the SPIRE entry of orders", 20*time.Second, func() (bool, error) {
		entries, err = reader.ListOwned(ctx)
		return len(entries) == 1, err
	})
	if len(entries) != 1 {
		t.Fatalf("entries %+v", entries)
	}
	e := entries[0]
	if e.SPIFFEID != spiffeID || !slices.Equal(e.Selectors, []string{"k8s:ns:" + ns, "k8s:sa:orders-sa"}) || e.TTL != 600 {
		t.Errorf("entry %+v, want %s selected by namespace and service account, TTL 600", e, spiffeID)
	}
	if !slices.Equal(e.DNSNames, []string{"orders." + ns, "orders." + ns + ".svc"}) {
		t.Errorf("entry DNS names %v, want the workload's own", e.DNSNames)
	}
	absent(t, ns, "squat-tls", "through SPIRE for another namespace's Service")

	// Renewal with a short TTL: a new SVID before the old one expires.
	short := map[string]string{ann + "tls-secret-name": "short-tls", ann + "cert-ttl": "3"}
	deploymentWithSA(t, ns, "short", "orders-sa", short)
	first := parsed(t, secret(t, ns, "short-tls"), short, nil).Chain[0]
	suite.WaitFor(t, "renewal of short-tls", 15*time.Second, func() (bool, error) {
		var s corev1.Secret
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "short-tls"}, &s); err != nil {
			return false, err
		}
		p, err := credentials.Parse(mustSpec(t, short), s.Data, nil)
		if err != nil {
			return false, err
		}
		return p.Chain[0].SerialNumber.Cmp(first.SerialNumber) != 0, nil
	})
	if !time.Now().Before(first.NotAfter) {
		t.Errorf("renewed only after the old SVID expired (%s)", first.NotAfter)
	}

	// Two workloads' SVIDs make a mutual-TLS connection; a foreign certificate does not.
	checkMutualTLS(t, ns)

	// The workload goes while the operator is down; the restarted operator removes its
	// orphaned entry.
	stop()
	if err := kube.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "pods of orders to go", 30*time.Second, func() (bool, error) {
		var pods corev1.PodList
		err := kube.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": "orders"})
		return len(pods.Items) == 0, err
	})
	startOperator(t, cfg)
	suite.WaitFor(t, "the orphaned entry to be removed", 20*time.Second, func() (bool, error) {
		entries, err = reader.ListOwned(ctx)
		for _, e := range entries {
			if e.SPIFFEID == spiffeID {
				return false, err
			}
		}
		return len(entries) == 3, err
	})
}

func deploymentWithSA(t *testing.T, ns, name, sa string, annotations map[string]string) client.Object {
	t.Helper()
	d := tutorial.Deployment(ns, name, 8080)
	d.Spec.Template.Annotations = annotations
	d.Spec.Template.Spec.ServiceAccountName = sa
	env.Create(t, d)
	suite.WaitFor(t, "pods of "+name, 30*time.Second, func() (bool, error) {
		var pods corev1.PodList
		err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": name})
		return len(pods.Items) > 0, err
	})
	return d
}
