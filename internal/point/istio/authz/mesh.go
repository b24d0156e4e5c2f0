package authz

import (
	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations by which Istio says how a pod takes part in the mesh.
const (
	// ProxyContainer is the name of Istio's sidecar container.
	ProxyContainer = "istio-proxy"
	// SidecarStatusAnnotation is written by Istio's injector on every pod it injected.
	SidecarStatusAnnotation = "sidecar.istio.io/status"
	// DataplaneModeLabel puts a namespace or pod in ambient mode (value DataplaneAmbient)
	// or, on a pod, takes it out (value DataplaneNone).
	DataplaneModeLabel = "istio.io/dataplane-mode"
	// DataplaneAmbient is DataplaneModeLabel's value for ambient mode.
	DataplaneAmbient = "ambient"
	// DataplaneNone is DataplaneModeLabel's value that opts a pod out of ambient mode.
	DataplaneNone = "none"
	// UseWaypointLabel on a Service, pod or namespace names the waypoint its traffic goes
	// through; the value WaypointNone opts out.
	UseWaypointLabel = "istio.io/use-waypoint"
	// UseWaypointNamespaceLabel names the namespace of that waypoint when it is not the
	// labelled object's own.
	UseWaypointNamespaceLabel = "istio.io/use-waypoint-namespace"
	// WaypointNone is UseWaypointLabel's opt-out value.
	WaypointNone = "none"
)

// Mode is how a pod takes part in the mesh.
type Mode string

const (
	// Outside: no proxy sees the pod's traffic, so Istio neither proves its identity
	// nor checks calls to it.
	Outside Mode = "Outside"
	// Sidecar: an istio-proxy container (classic or native sidecar) handles the pod's
	// traffic and enforces L4 and L7 rules.
	Sidecar Mode = "Sidecar"
	// Ambient: the node's ztunnel handles the pod's traffic; it enforces L4 rules only,
	// L7 rules need a waypoint.
	Ambient Mode = "Ambient"
)

// PodMode says how a pod takes part in the mesh, from its spec and metadata and its
// namespace's labels (nil when unknown). A sidecar wins over ambient labels, as Istio's
// CNI does not capture pods that carry one.
func PodMode(pod *corev1.Pod, namespaceLabels map[string]string) Mode {
	if HasSidecar(pod) {
		return Sidecar
	}
	switch pod.Labels[DataplaneModeLabel] {
	case DataplaneAmbient:
		return Ambient
	case DataplaneNone:
		return Outside
	}
	if namespaceLabels[DataplaneModeLabel] == DataplaneAmbient {
		return Ambient
	}
	return Outside
}

// HasSidecar reports whether the pod runs Istio's proxy beside its containers: a classic
// sidecar container, a native sidecar (an init container that keeps running, restart
// policy Always) or the injector's status annotation. An init container named
// istio-proxy that runs to completion is not a sidecar: it proxies nothing afterwards.
func HasSidecar(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[SidecarStatusAnnotation]; ok {
		return true
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == ProxyContainer {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == ProxyContainer && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return true
		}
	}
	return false
}

// Waypoint is a waypoint proxy, by the Gateway that deploys it.
type Waypoint struct {
	// Namespace and Name are the Gateway's; its pods run under the ServiceAccount Name.
	Namespace string
	Name      string
}

// WaypointOf returns the waypoint that traffic addressed to a Service goes through: the
// Service's own use-waypoint label, else its namespace's; the value "none" on the Service
// opts it out of the namespace's waypoint. ok is false when there is none.
func WaypointOf(svc *corev1.Service, namespaceLabels map[string]string) (Waypoint, bool) {
	for _, l := range []map[string]string{svc.Labels, namespaceLabels} {
		name, set := l[UseWaypointLabel]
		if !set {
			continue
		}
		if name == "" || name == WaypointNone {
			return Waypoint{}, false
		}
		ns := l[UseWaypointNamespaceLabel]
		if ns == "" {
			ns = svc.Namespace
		}
		return Waypoint{Namespace: ns, Name: name}, true
	}
	return Waypoint{}, false
}
