package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// startCredentials runs the credentials operator with its defaults (built-in CA, whose
// Secret it creates in intentguard-system) until ctx ends; done receives its exit.
func startCredentials(ctx context.Context, cfg *rest.Config, c client.Client) (done chan error, err error) {
	conf := credentials.Defaults()
	conf.MetricsAddr, conf.ProbeAddr = "0", "0"
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: conf.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", conf.Namespace, err)
	}
	mgr, err := credentials.New(ctx, cfg, conf)
	if err != nil {
		return nil, err
	}
	done = make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return done, fmt.Errorf("the credentials operator's cache did not sync")
	}
	return done, nil
}

const credentialsDemoNamespace = "credentials-demo"

func demoCredentialsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo-credentials",
		Short: "Show the credentials operator issuing a certificate into a Secret for a Deployment's pods",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := start(ctx, enforcement.Options{}, false)
			if err != nil {
				return err
			}
			defer s.stop()
			return runCredentialsDemo(ctx, s.client)
		},
	}
}

func runCredentialsDemo(ctx context.Context, c client.Client) error {
	ns := credentialsDemoNamespace
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	annotations := map[string]string{
		credentials.Prefix + credentials.AnnSecretName: "client-tls",
		credentials.Prefix + credentials.AnnDNSNames:   "client." + ns + ".svc.cluster.local",
		credentials.Prefix + credentials.AnnTTL:        "86400",
	}
	d := tutorial.Deployment(ns, "client", 8080)
	replicas := int32(2)
	d.Spec.Replicas = &replicas
	d.Spec.Template.Annotations = annotations
	fmt.Printf("\ncreating Deployment %s/client (2 replicas) whose pods are annotated:\n", ns)
	printYAML(annotations)
	if err := c.Create(ctx, d); err != nil {
		return fmt.Errorf("creating Deployment: %w", err)
	}
	t0 := time.Now()
	var secret corev1.Secret
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "client-tls"}, &secret)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for Secret client-tls: %w", err)
	}
	fmt.Printf("\nSecret %s/client-tls issued %s after the Deployment was created\n", ns, time.Since(t0).Round(time.Millisecond))
	var keys []string
	for k, v := range secret.Data {
		keys = append(keys, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	slices.Sort(keys)
	fmt.Printf("  keys:        %s\n", strings.Join(keys, ", "))
	fmt.Printf("  labels:      %v\n", secret.Labels)
	fmt.Printf("  owner:       %s %s\n", secret.OwnerReferences[0].Kind, secret.OwnerReferences[0].Name)
	fmt.Printf("  renew at:    %s\n", secret.Annotations[credentials.AnnRenewAt])

	spec, err := credentials.ParseSpec(annotations)
	if err != nil {
		return err
	}
	p, err := credentials.Parse(spec, secret.Data, nil)
	if err != nil {
		return err
	}
	leaf := p.Chain[0]
	fmt.Printf("\ncertificate (cert.pem):\n  subject:     %s\n  issuer:      %s\n  URI SAN:     %v\n  DNS SANs:    %s\n  not after:   %s\n",
		leaf.Subject, leaf.Issuer, leaf.URIs, strings.Join(leaf.DNSNames, ", "), leaf.NotAfter.UTC().Format(time.RFC3339))
	if err := pki.Verify(p.Chain, p.Roots, pki.ClientAuth); err != nil {
		return fmt.Errorf("the issued certificate does not verify against ca.pem: %w", err)
	}
	user, err := principal.KafkaUser(principal.Subject(identity.Identity{Namespace: ns, Name: "client"}, principal.Organization))
	if err != nil {
		return err
	}
	if "User:"+leaf.Subject.String() != user {
		return fmt.Errorf("a broker would see User:%s, but ACLs are written for %s", leaf.Subject, user)
	}
	fmt.Printf("  Kafka principal: %s (what a broker derives from it, and what the intents operator writes ACLs for)\n", user)
	fmt.Println("\nresult: one Secret for the Deployment's 2 pods; the certificate verifies against ca.pem and names the workload")
	return nil
}
