// Package controlplane runs a local Kubernetes control plane (etcd, kube-apiserver and
// kube-controller-manager, built from source by hack/k8s-binaries.sh) with this project's
// CRDs installed. Deployments really create ReplicaSets and Pods there; nothing schedules
// or runs the pods, which is all NetworkPolicy selection needs.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/config/crd"
	configwebhook "github.com/intentguard/intentguard/config/webhook"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/point/istio/istiocrd"
	"github.com/intentguard/intentguard/internal/testsupport/process"
	"github.com/intentguard/intentguard/internal/webhook"
)

// AssetsEnv names the directory holding kube-apiserver, kube-controller-manager and etcd.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Cluster is a running local control plane.
type Cluster struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for Config.
	Kubeconfig string

	env          *envtest.Environment
	stopWebhooks context.CancelFunc
	webhooksDone chan error
	kcm          *process.Process
	dir          string
}

// Options configures Start.
type Options struct {
	// Istio installs Istio's AuthorizationPolicy CRD beside the project's, so that the
	// Istio enforcement point can store and watch policies with no Istio running.
	Istio bool
	// WithoutControllerManager skips kube-controller-manager (no ReplicaSets or Pods from
	// Deployments, no namespace deletion).
	WithoutControllerManager bool
	// Controllers limits kube-controller-manager to these controllers (its --controllers
	// flag); empty runs its defaults.
	Controllers []string
	// Log receives the controller manager's output; nil discards it.
	Log *os.File
	// Webhooks installs the conversion and validating webhooks and serves them from this
	// process for as long as the cluster runs, so that every served version converts and
	// invalid objects are refused as in a real install.
	Webhooks bool
	// ServiceCIDR is the API server's service-cluster-ip-range; empty keeps envtest's
	// 10.0.0.0/24, which holds 254 Services with a cluster IP.
	ServiceCIDR string
}

// Start brings up the control plane and installs the CRDs. The binaries are looked up in
// $KUBEBUILDER_ASSETS, else built (once, then cached) by hack/k8s-binaries.sh when run
// from a checkout.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	assets, err := Assets(ctx)
	if err != nil {
		return nil, err
	}
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	if opts.Istio {
		ap, err := istiocrd.AuthorizationPolicy()
		if err != nil {
			return nil, err
		}
		crds = append(crds, ap)
	}
	scheme := informer.Scheme()
	if err := api.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering the served API versions: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDInstallOptions:        envtest.CRDInstallOptions{CRDs: crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if opts.ServiceCIDR != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", opts.ServiceCIDR)
	}
	if opts.Webhooks {
		hooks, err := ValidatingWebhooks()
		if err != nil {
			return nil, err
		}
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{ValidatingWebhooks: hooks}
		// envtest points the conversion webhook of every CRD whose kinds are convertible
		// in this scheme at the local webhook server.
		env.CRDInstallOptions.Scheme = scheme
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest leaves etcd and kube-apiserver running when a later step (installing
		// the CRDs or webhooks) fails.
		_ = env.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c := &Cluster{Config: cfg, env: env}
	if err := c.writeKubeconfig(); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if opts.Webhooks {
		if err := c.serveWebhooks(scheme); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	if !opts.WithoutControllerManager {
		if err := c.startControllerManager(filepath.Join(assets, "kube-controller-manager"), opts); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// ValidatingWebhooks returns the generated ValidatingWebhookConfiguration.
func ValidatingWebhooks() ([]*admissionv1.ValidatingWebhookConfiguration, error) {
	var hook admissionv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(configwebhook.Manifests, &hook); err != nil {
		return nil, fmt.Errorf("decoding config/webhook/manifests.yaml: %w", err)
	}
	return []*admissionv1.ValidatingWebhookConfiguration{&hook}, nil
}

// serveWebhooks runs the webhooks on the address and certificate envtest configured the
// API server to call, and waits until they answer.
func (c *Cluster) serveWebhooks(scheme *runtime.Scheme) error {
	o := c.env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.LocalServingHost, Port: o.LocalServingPort, CertDir: o.LocalServingCertDir}),
	})
	if err != nil {
		return fmt.Errorf("creating the webhook server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := informer.RegisterIndexes(ctx, informer.ClusterWideIndexer{Cache: mgr.GetCache()}); err != nil {
		cancel()
		return err
	}
	if err := webhook.Setup(mgr); err != nil {
		cancel()
		return err
	}
	c.stopWebhooks, c.webhooksDone = cancel, make(chan error, 1)
	go func() { c.webhooksDone <- mgr.Start(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		err := mgr.GetWebhookServer().StartedChecker()(nil)
		if err == nil && mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook server did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Assets returns the directory of the control-plane binaries, building them if needed.
func Assets(ctx context.Context) (string, error) {
	return process.BinDir(ctx, AssetsEnv, filepath.Join("hack", "k8s-binaries.sh"))
}

// CRDs returns this project's CustomResourceDefinitions.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(crd.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		b, err := crd.FS.ReadFile(path)
		if err != nil {
			return err
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return fmt.Errorf("decoding CRD %s: %w", path, err)
		}
		out = append(out, &c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading embedded CRDs: %w", err)
	}
	return out, nil
}

func (c *Cluster) writeKubeconfig() error {
	user, err := c.env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating an admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering kubeconfig: %w", err)
	}
	dir, err := os.MkdirTemp("", "intentguard-local-")
	if err != nil {
		return err
	}
	c.dir = dir
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	return os.WriteFile(c.Kubeconfig, kc, 0o600)
}

func (c *Cluster) startControllerManager(bin string, opts Options) error {
	port, err := process.FreePort()
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.dir, "kcm-certs"),
		// Fast feedback: pods and replica sets appear as soon as their owners do.
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--v=1",
	}
	if len(opts.Controllers) > 0 {
		args = append(args, "--controllers="+strings.Join(opts.Controllers, ","))
	}
	cmd := exec.Command(bin, args...)
	if opts.Log != nil {
		cmd.Stdout, cmd.Stderr = opts.Log, opts.Log
	}
	kcm, err := process.Start(cmd)
	if err != nil {
		return err
	}
	c.kcm = kcm
	return nil
}

// Stop stops every process and removes the temporary files.
func (c *Cluster) Stop() error {
	var errs []error
	if c.kcm != nil {
		c.kcm.Stop(10 * time.Second)
	}
	if c.stopWebhooks != nil {
		c.stopWebhooks()
		if err := <-c.webhooksDone; err != nil {
			errs = append(errs, fmt.Errorf("webhook server: %w", err))
		}
	}
	if err := c.env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// etcdURL is the client URL of the control plane's etcd.
func (c *Cluster) etcdURL() string {
	return c.env.ControlPlane.Etcd.URL.String()
}
