// Package authztest builds inputs of the Istio policy compiler for tests: pods in each
// mesh mode, Services with or without a waypoint, and random servers with random clients,
// so the compiler's own tests and the check against Istio's validation (a module of its
// own) judge the same policies.
package authztest

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
)

// Pod returns a pod running under sa, in a mesh mode: "sidecar" (classic), "native"
// (sidecar as a restartable init container), "annotated" (injector's status annotation),
// "ambient" (pod label), "optout" (ambient opt-out label), or "" (none of these).
func Pod(name, namespace, sa, mode string, labels map[string]string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{}, Annotations: map[string]string{}}}
	for k, v := range labels {
		p.Labels[k] = v
	}
	p.Spec.ServiceAccountName = sa
	p.Spec.Containers = []corev1.Container{{Name: "app"}}
	always := corev1.ContainerRestartPolicyAlways
	switch mode {
	case "sidecar":
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: authz.ProxyContainer})
	case "native":
		p.Spec.InitContainers = []corev1.Container{{Name: authz.ProxyContainer, RestartPolicy: &always}}
	case "annotated":
		p.Annotations[authz.SidecarStatusAnnotation] = `{"containers":["istio-proxy"]}`
	case "ambient":
		p.Labels[authz.DataplaneModeLabel] = authz.DataplaneAmbient
	case "optout":
		p.Labels[authz.DataplaneModeLabel] = authz.DataplaneNone
	}
	return p
}

// Service returns a Service that uses waypoint (none when empty).
func Service(name, namespace, waypoint string) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if waypoint != "" {
		s.Labels = map[string]string{authz.UseWaypointLabel: waypoint}
	}
	return s
}

// Scenarios of RandomInput: how the server takes part in the mesh.
const (
	// SidecarServer: the server's pods run a sidecar.
	SidecarServer = "sidecar"
	// WaypointServer: ambient server behind a Service that uses the waypoint "waypoint".
	WaypointServer = "waypoint"
	// AmbientServer: ambient server behind a Service that uses no waypoint.
	AmbientServer = "ambient"
)

// PathPatterns are the paths RandomInput declares: exact ones and prefixes.
var PathPatterns = []string{"/a", "/a/b", "/b", "/c", "/a*", "/c/*", "/*", "/"}

// RandomInput returns a server "nginx" in namespace shop (selected by app=nginx, behind
// the Service nginx) in a random scenario, with one to four clients in shop or web: each
// with its own ServiceAccount, mostly in the mesh, mostly with pods, allowed any request
// or a few random paths and methods.
func RandomInput(rng *rand.Rand, trustDomain string) (authz.Input, string) {
	scenario := []string{SidecarServer, WaypointServer, AmbientServer}[rng.IntN(3)]
	serverMode := "sidecar"
	nsLabels := map[string]map[string]string{}
	if scenario != SidecarServer {
		serverMode = ""
		nsLabels["shop"] = map[string]string{authz.DataplaneModeLabel: authz.DataplaneAmbient}
	}
	in := authz.Input{TrustDomain: trustDomain, NamespaceLabels: nsLabels, Server: authz.Server{
		Ref:      intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true},
		Selector: map[string]string{"app": "nginx"},
		Pods:     []corev1.Pod{Pod("nginx-1", "shop", "nginx", serverMode, map[string]string{"app": "nginx"})},
	}}
	switch scenario {
	case WaypointServer:
		in.Server.Services = []corev1.Service{Service("nginx", "shop", "waypoint")}
	case AmbientServer:
		in.Server.Services = []corev1.Service{Service("nginx", "shop", "")}
	}
	if rng.IntN(2) == 0 {
		in.Server.Ports = []int32{80}
	}
	for i := range 1 + rng.IntN(4) {
		ns := []string{"shop", "web"}[rng.IntN(2)]
		c := authz.Client{Ref: intent.Ref{Namespace: ns, Name: fmt.Sprintf("c%d", i)}}
		mode := []string{"sidecar", "native", "ambient", "optout"}[rng.IntN(4)]
		if rng.IntN(10) > 0 {
			c.Pods = []corev1.Pod{Pod(fmt.Sprintf("c%d-1", i), ns, fmt.Sprintf("sa%d", i), mode, nil)}
		}
		if rng.IntN(3) == 0 {
			c.AnyRequest = true
		} else {
			for range 1 + rng.IntN(3) {
				h := v2beta1.HTTPTarget{Path: PathPatterns[rng.IntN(len(PathPatterns))]}
				for _, m := range authz.Methods {
					if rng.IntN(4) == 0 {
						h.Methods = append(h.Methods, m)
					}
				}
				c.HTTP = append(c.HTTP, h)
			}
		}
		in.Clients = append(in.Clients, c)
	}
	return in, scenario
}
