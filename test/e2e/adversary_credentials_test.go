package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// startCredentialsOperator runs the credentials operator (built-in CA, its Secret in ns)
// until the test ends, and returns a counter of its API writes.
func startCredentialsOperator(t *testing.T, ns string) *suite.WriteCounter {
	t.Helper()
	c := credentials.Defaults()
	c.Namespace = ns
	c.MetricsAddr, c.ProbeAddr = "0", "0"
	c.InProcess = true
	return runCounted(t, local.Config, "credentials operator", func(ctx context.Context, cfg *rest.Config) (ctrl.Manager, error) {
		return credentials.New(ctx, cfg, c)
	})
}

// certRequest is one tenant pod asking for a certificate.
type certRequest struct {
	ns, pod, secret string
	// names is the dns-names annotation; foreign lists those outside the pod's namespace.
	names, foreign []string
}

// inNamespaceScope reports whether a DNS name stays inside namespace ns: one or two
// labels (a Service, or a pod under a Service), optionally behind "*.", then the
// namespace, optionally followed by .svc and the cluster domain.
func inNamespaceScope(name, ns string) bool {
	n := strings.TrimPrefix(name, "*.")
	for _, suffix := range []string{"." + ns + ".svc.cluster.local", "." + ns + ".svc", "." + ns} {
		if head, ok := strings.CutSuffix(n, suffix); ok {
			return head != "" && strings.Count(head, ".") <= 1 && !strings.Contains(head, "*")
		}
	}
	return false
}

// testCertificates is the credentials part of the adversarial test: victims hold
// certificates for their own names; tenants' pods ask for certificates naming the
// victims' DNS names (and wider wildcards), claim victims' workload names and Secret
// names. No tenant may hold a certificate for a name outside its namespace, a refused
// request is an Event on the pod with nothing issued, and no victim Secret changes.
func testCertificates(t *testing.T, seed int64, steps int, replay string) {
	rnd := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	opNS := env.Namespace(t, "advc-system")
	startCredentialsOperator(t, opNS)
	victims := []string{env.Namespace(t, "advc-v0"), env.Namespace(t, "advc-v1")}
	tenant := env.Namespace(t, "advc-t0")
	var log []string
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d (replay: %s): %s\nrequests so far:\n%s", seed, step, replay, fmt.Sprintf(format, args...), strings.Join(log, "\n"))
	}

	type victimSecret struct{ ns, name, rv string }
	var victimSecrets []victimSecret
	var victimNames []string
	for i, ns := range victims {
		name := fmt.Sprintf("api%d", i)
		own := []string{"svc-" + name + "." + ns + ".svc.cluster.local", "svc-" + name + "." + ns}
		victimNames = append(victimNames, own...)
		victimNames = append(victimNames, name+"."+ns, "*."+ns+".svc.cluster.local")
		env.Deployment(t, ns, name, 1, map[string]string{
			credentials.Prefix + credentials.AnnSecretName: name + "-tls",
			credentials.Prefix + credentials.AnnDNSNames:   strings.Join(own, ","),
		}, nil)
		s := waitSecret(t, ns, name+"-tls")
		victimSecrets = append(victimSecrets, victimSecret{ns, name + "-tls", s.ResourceVersion})
		log = append(log, fmt.Sprintf("victim %s/%s holds %s", ns, name, strings.Join(own, ",")))
	}
	wider := []string{"*.com", "*.svc.cluster.local", "kafka.kafka.svc.cluster.local", "api.example.com", tenant + "." + victims[0], "x." + tenant + ".evil.example"}

	var requests []certRequest
	issued, refused := 0, 0
	defer func() {
		t.Logf("%d tenant requests within their namespace issued, %d naming other namespaces made", issued, refused)
	}()
	usedSecret := map[string]bool{}
	for step := 1; step <= steps; step++ {
		seq := step
		r := certRequest{ns: tenant, pod: fmt.Sprintf("req%d", seq), secret: fmt.Sprintf("req%d-tls", seq)}
		if v := victimSecrets[rnd.Intn(len(victimSecrets))]; !usedSecret[v.name] && rnd.Intn(3) == 0 {
			r.secret = v.name // the victim's Secret name, in the tenant's namespace
		}
		usedSecret[r.secret] = true
		svc := fmt.Sprintf("s%d", seq)
		own := []string{svc + "." + tenant, svc + "b." + tenant + ".svc", svc + "c." + tenant + ".svc.cluster.local", "*." + svc + "d." + tenant + ".svc.cluster.local"}
		for _, n := range own {
			if rnd.Intn(2) == 0 {
				r.names = append(r.names, n)
			}
		}
		if step == 1 || rnd.Intn(3) != 0 {
			bad := victimNames
			if rnd.Intn(3) == 0 {
				bad = wider
			}
			n := bad[rnd.Intn(len(bad))]
			r.names = append(r.names, n)
			r.foreign = append(r.foreign, n)
		}
		ann := map[string]string{credentials.Prefix + credentials.AnnSecretName: r.secret}
		if len(r.names) > 0 {
			ann[credentials.Prefix+credentials.AnnDNSNames] = strings.Join(r.names, ",")
		}
		if rnd.Intn(2) == 0 {
			// Claiming a victim's workload name: the certificate is then for that name in the
			// tenant's namespace, never in the victim's.
			ann[identity.WorkloadNameAnnotation] = fmt.Sprintf("api%d", rnd.Intn(len(victims)))
		}
		barePod(t, tenant, r.pod, map[string]string{"app": r.pod}, ann)
		requests = append(requests, r)
		log = append(log, fmt.Sprintf("tenant pod %s/%s: %v", tenant, r.pod, ann))

		warned := false
		if len(r.foreign) > 0 {
			// The operator's answer: a Warning Event, or (wrongly) a Secret, checked below.
			warned = podWarnedOrSecret(ctx, tenant, r.pod, r.secret, 30*time.Second)
		} else {
			waitSecret(t, tenant, r.secret)
		}
		if len(r.foreign) > 0 {
			refused++
		} else {
			issued++
		}
		// Every certificate in the tenant's namespace stays inside it.
		var secrets corev1.SecretList
		if err := kube.List(ctx, &secrets, client.InNamespace(tenant)); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			cert, ok := leafOf(&s)
			if !ok {
				continue
			}
			for _, n := range cert.DNSNames {
				if !inNamespaceScope(n, tenant) {
					fail(step, "Secret %s/%s holds a certificate for %q, outside namespace %s (SANs %v)", tenant, s.Name, n, tenant, cert.DNSNames)
				}
			}
			if !strings.HasSuffix(cert.Subject.CommonName, "."+tenant) {
				fail(step, "Secret %s/%s holds a certificate for CN %q", tenant, s.Name, cert.Subject.CommonName)
			}
			for _, u := range cert.URIs {
				if !strings.Contains(u.Path, "/namespace/"+tenant+"/") {
					fail(step, "Secret %s/%s holds a certificate for %s", tenant, s.Name, u)
				}
			}
		}
		// A refused request issued nothing.
		for _, req := range requests {
			if len(req.foreign) == 0 {
				continue
			}
			var s corev1.Secret
			err := kube.Get(ctx, client.ObjectKey{Namespace: req.ns, Name: req.secret}, &s)
			if err == nil {
				fail(step, "pod %s/%s asked for %v outside its namespace, and Secret %s was issued", req.ns, req.pod, req.foreign, req.secret)
			}
			if !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
		if len(r.foreign) > 0 && !warned {
			fail(step, "pod %s/%s asked for %v outside its namespace and got no Warning Event", tenant, r.pod, r.foreign)
		}
		for _, v := range victimSecrets {
			var s corev1.Secret
			if err := kube.Get(ctx, client.ObjectKey{Namespace: v.ns, Name: v.name}, &s); err != nil {
				fail(step, "victim Secret %s/%s: %v", v.ns, v.name, err)
			}
			if s.ResourceVersion != v.rv {
				fail(step, "victim Secret %s/%s changed (resourceVersion %s, was %s)", v.ns, v.name, s.ResourceVersion, v.rv)
			}
		}
	}
}

// waitSecret waits for a Secret to exist and returns it.
func waitSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	suite.WaitFor(t, "Secret "+ns+"/"+name, 30*time.Second, func() (bool, error) {
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	return &s
}

// podWarnedOrSecret waits up to timeout for a Warning Event about the pod or for the
// Secret to exist, and reports whether the Event came.
func podWarnedOrSecret(ctx context.Context, ns, pod, secret string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var events eventsv1.EventList
		if err := kube.List(ctx, &events, client.InNamespace(ns)); err == nil {
			for _, e := range events.Items {
				if e.Regarding.Kind == "Pod" && e.Regarding.Name == pod && e.Type == corev1.EventTypeWarning {
					return true
				}
			}
		}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, &corev1.Secret{}); err == nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// leafOf parses the certificate of a Secret the credentials operator wrote.
func leafOf(s *corev1.Secret) (*x509.Certificate, bool) {
	cert, err := pki.ParseCert(s.Data["cert.pem"])
	return cert, err == nil
}
