// Command localcluster runs a local control plane with the intents operator: "demo" walks
// through the network-policy tutorial and prints what was enforced; "demo-kafka" does the
// same for the Kafka tutorial on an in-process broker; "demo-mapper" runs the network
// mapper on the tutorial's pods in network namespaces; "up" keeps the control plane
// running for kubectl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

func main() {
	var verbose bool
	root := &cobra.Command{
		Use:           "localcluster",
		Short:         "A local Kubernetes control plane with the intents operator",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			if verbose {
				ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
			} else {
				ctrl.SetLogger(logr.Discard())
			}
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "print the operator's logs")
	root.AddCommand(demoCommand(), demoKafkaCommand(), demoCredentialsCommand(), demoMapperCommand(), upCommand())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// session is a running control plane and operator.
type session struct {
	cluster *controlplane.Cluster
	client  client.Client
	stopOp  context.CancelFunc
	opDone  chan error
	// credDone receives the credentials operator's exit.
	credDone chan error
}

// withIstio says whether start installs Istio's AuthorizationPolicy CRD and runs the
// Istio enforcement point.
type withIstio bool

func start(ctx context.Context, enforcement enforcement.Options, mesh withIstio) (*session, error) {
	t0 := time.Now()
	fmt.Println("starting etcd, kube-apiserver and kube-controller-manager ...")
	// With the webhooks, files in every ClientIntents version are accepted, as in a cluster.
	lc, err := controlplane.Start(ctx, controlplane.Options{Webhooks: true, Istio: bool(mesh)})
	if err != nil {
		return nil, err
	}
	fmt.Printf("control plane up in %s\n", time.Since(t0).Round(time.Millisecond))
	c, err := client.New(lc.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		_ = lc.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	if mesh {
		if err := meshConfig(ctx, c); err != nil {
			_ = lc.Stop()
			return nil, err
		}
	}
	mgr, err := operator.New(ctx, lc.Config, operator.Config{Enforcement: enforcement, MetricsAddr: "0", ProbeAddr: "0", KafkaACLs: true,
		IstioAuthorizationPolicies: bool(mesh),
		// The operator runs in this process, not in a namespace of its own: its Kafka
		// ownership records go where only the cluster's administrators write.
		Kafka: kafka.Options{RecordNamespace: metav1.NamespaceSystem}})
	if err != nil {
		_ = lc.Stop()
		return nil, err
	}
	opCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(opCtx) }()
	if !mgr.GetCache().WaitForCacheSync(opCtx) {
		cancel()
		<-done
		_ = lc.Stop()
		return nil, fmt.Errorf("the operator's cache did not sync")
	}
	fmt.Printf("intents operator started and synced in %s\n", time.Since(t0).Round(time.Millisecond))
	credDone, err := startCredentials(opCtx, lc.Config, c)
	if err != nil {
		cancel()
		<-done
		if credDone != nil {
			<-credDone
		}
		_ = lc.Stop()
		return nil, err
	}
	fmt.Printf("credentials operator (built-in CA) started and synced in %s\n", time.Since(t0).Round(time.Millisecond))
	return &session{cluster: lc, client: c, stopOp: cancel, opDone: done, credDone: credDone}, nil
}

// meshConfig writes the mesh configuration istiod's default installation writes (it
// states no trust domain, so istiod's default applies), unless there is one: the Istio
// point reads its trust domain there, as in a cluster running istiod.
func meshConfig(ctx context.Context, c client.Client) error {
	key := istio.DefaultMeshConfig
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", key.Namespace, err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: map[string]string{"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"}}
	if err := c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the mesh configuration %s: %w", key, err)
	}
	return nil
}

func (s *session) stop() {
	s.stopOp()
	<-s.opDone
	<-s.credDone
	if err := s.cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
}

func demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the network-policy tutorial and print the policies and the connectivity they enforce",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := start(ctx, enforcement.Options{}, false)
			if err != nil {
				return err
			}
			defer s.stop()
			return runTutorial(ctx, s.client)
		},
	}
}

func runTutorial(ctx context.Context, c client.Client) error {
	port := connectivity.Port{Number: 80, Name: "http"}
	fmt.Printf("\ncreating namespace %s: Deployments server (Service server:80), client, client-other\n", tutorial.Namespace)
	if err := tutorial.Create(ctx, c); err != nil {
		return err
	}
	m, err := connectivity.Evaluate(ctx, c, []string{tutorial.Namespace}, port)
	if err != nil {
		return err
	}
	fmt.Println("\nconnectivity on port 80 before any intents:")
	m.Render(os.Stdout)

	ci := tutorial.Intents()
	fmt.Println("\napplying ClientIntents:")
	printYAML(ci.Spec)
	if err := c.Create(ctx, ci); err != nil {
		return fmt.Errorf("creating ClientIntents: %w", err)
	}
	// Timed from the moment the API server accepted the file: its first write of a new
	// resource type takes it a while on its own.
	t0 := time.Now()
	if err := waitReady(ctx, c, client.ObjectKeyFromObject(ci)); err != nil {
		return err
	}
	fmt.Printf("ClientIntents Ready %s after the API server accepted them\n", time.Since(t0).Round(time.Millisecond))
	var got v2beta1.ClientIntents
	if err := c.Get(ctx, client.ObjectKeyFromObject(ci), &got); err != nil {
		return fmt.Errorf("reading the ClientIntents status: %w", err)
	}
	fmt.Println("status, per target:")
	for _, t := range got.Status.Targets {
		fmt.Printf("  %s (%s): %s, %s\n", t.Target, t.Point, t.State, t.Message)
	}

	var policies networkingv1.NetworkPolicyList
	if err := c.List(ctx, &policies, client.InNamespace(tutorial.Namespace), client.MatchingLabels{ownership.Label: ownership.IntentsOperator}); err != nil {
		return fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	fmt.Printf("\nNetworkPolicies created by the operator (%d):\n", len(policies.Items))
	for _, p := range policies.Items {
		fmt.Printf("--- %s/%s\n", p.Namespace, p.Name)
		printYAML(p.Spec)
	}
	if m, err = connectivity.Evaluate(ctx, c, []string{tutorial.Namespace}, port); err != nil {
		return err
	}
	fmt.Println("connectivity on port 80 with the intents enforced:")
	m.Render(os.Stdout)

	server := "server." + tutorial.Namespace
	allowed, _ := m.WorkloadAllowed("client."+tutorial.Namespace, server)
	otherAllowed, _ := m.WorkloadAllowed("client-other."+tutorial.Namespace, server)
	if !allowed || otherAllowed || len(policies.Items) != 1 {
		return errors.New("unexpected result: want one policy, client -> server allowed and client-other -> server denied")
	}
	fmt.Println("\nresult: client -> server allowed, client-other -> server denied, as declared")
	return nil
}

func waitReady(ctx context.Context, c client.Client, key client.ObjectKey) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var ci v2beta1.ClientIntents
		if err := c.Get(ctx, key, &ci); err != nil {
			return false, err
		}
		cond := apimeta.FindStatusCondition(ci.Status.Conditions, enforcement.ConditionReady)
		if cond != nil {
			last = cond.Message
		}
		return ci.Status.ObservedGeneration == ci.Generation && cond != nil && cond.Status == "True", nil
	})
	if err != nil {
		return fmt.Errorf("waiting for ClientIntents %s to be Ready (last: %q): %w", key, last, err)
	}
	return nil
}

func printYAML(v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(indent(string(b)))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}

func upCommand() *cobra.Command {
	var opts enforcement.Options
	var enforced []string
	var withTutorial, istioPoint bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the control plane and the operator, print a kubeconfig, and keep running until interrupted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			opts.EnforcedNamespaces = enforced
			s, err := start(ctx, opts, withIstio(istioPoint))
			if err != nil {
				return err
			}
			defer s.stop()
			if withTutorial {
				if err := tutorial.Create(ctx, s.client); err != nil {
					return err
				}
				fmt.Printf("tutorial workloads created in %s\n", tutorial.Namespace)
			}
			fmt.Printf("\nkubeconfig: %s\n\n  export KUBECONFIG=%s\n  kubectl apply -f your-intents.yaml\n\nPress Ctrl-C to stop.\n", s.cluster.Kubeconfig, s.cluster.Kubeconfig)
			<-ctx.Done()
			fmt.Println("stopping")
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Shadow, "shadow-mode", false, "enforce only ProtectedServices and --enforced-namespaces")
	cmd.Flags().StringSliceVar(&enforced, "enforced-namespaces", nil, "namespaces enforced even in shadow mode")
	cmd.Flags().BoolVar(&istioPoint, "istio", false, "install Istio's AuthorizationPolicy CRD and istiod's default mesh configuration, and run the Istio enforcement point")
	cmd.Flags().BoolVar(&withTutorial, "with-tutorial", false, "create the tutorial's workloads (not its intents)")
	return cmd
}
