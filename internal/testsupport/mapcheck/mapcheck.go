// Package mapcheck holds exported intents to what the map observed: it compiles the
// NetworkPolicies the operator would write for them over a cluster's objects, as
// intentguard plan does, and asks an evaluator independent of the compiler (cyclonus,
// through internal/connectivity) who may reach the servers they protect. The tests and
// the mapper demo run it.
package mapcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// Report is what the check found.
type Report struct {
	// Allowed and Denied count the (client pod, server pod, port) verdicts checked.
	Allowed, Denied int
	// Violations are the verdicts that differ from the map.
	Violations []string
}

// Err returns the violations as one error, nil when there are none.
func (r Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	errs := make([]error, len(r.Violations))
	for i, v := range r.Violations {
		errs[i] = errors.New(v)
	}
	return errors.Join(errs...)
}

// Check applies the exported ClientIntents to the cluster's objects (pods, workloads,
// Services, Namespaces; no intents of their own) and evaluates, on every port a call to
// a pod was observed on, every pod of the cluster against that pod. A pod pair is
// expected allowed exactly when an observed call runs from the client's identity to a
// server holding the destination pod: a workload on any port (intents name servers,
// not ports), a Service on its ports. Denials are expected only for pods of servers the
// export protects (those its targets name). Calls no ClientIntents can name (node,
// external peers) are not checked.
func Check(ctx context.Context, objects []client.Object, exported []v2beta1.ClientIntents, observed []edges.Edge) (Report, error) {
	all := slices.Clone(objects)
	for i := range exported {
		all = append(all, &exported[i])
	}
	snap, err := snapshot.New(all)
	if err != nil {
		return Report{}, fmt.Errorf("indexing the cluster's objects: %w", err)
	}
	r, err := analysis.Analyze(ctx, snap, analysis.Options{})
	if err != nil {
		return Report{}, fmt.Errorf("compiling the exported intents: %w", err)
	}
	c := checker{snap: snap, pods: snap.AllPods()}
	// The matrix holds the snapshot's pods in the snapshot's order.
	base := r.Matrix(connectivity.Port{}).Pods
	protected, err := c.protected(exported)
	if err != nil {
		return Report{}, err
	}
	// allowed are, per destination pod, the observed calls to it: client identity and
	// the ports (resolved on the pod), nil for every port.
	type call struct {
		client identity.Identity
		ports  []connectivity.Port
	}
	allowed := map[int][]call{}
	checked := map[int][]connectivity.Port{}
	for _, e := range observed {
		if e.Client.Kind != edges.PeerWorkload || e.Server.Kind != edges.PeerWorkload && e.Server.Kind != edges.PeerService {
			continue
		}
		dsts, err := c.serverPods(e.Server, e.Server.WorkloadKind)
		if err != nil {
			return Report{}, err
		}
		port := connectivity.Port{Number: int(e.Port), Protocol: protocol(e.Protocol)}
		var svcPorts []connectivity.Port
		if e.Server.Kind == edges.PeerService {
			if svcPorts, port, err = c.servicePorts(e.Server, port); err != nil {
				return Report{}, err
			}
		}
		client := identity.Identity{Namespace: e.Client.Namespace, Name: e.Client.Name, Kind: e.Client.WorkloadKind}
		for _, j := range dsts {
			cl := call{client: client}
			for _, p := range svcPorts {
				cl.ports = append(cl.ports, p.ResolveOn(base[j]))
			}
			allowed[j] = append(allowed[j], cl)
			if p := port.ResolveOn(base[j]); !slices.Contains(checked[j], p) {
				checked[j] = append(checked[j], p)
			}
		}
	}
	expected := func(src facts.Pod, dst int, port connectivity.Port) bool {
		for _, cl := range allowed[dst] {
			if src.Identity == cl.client && (cl.ports == nil || slices.Contains(cl.ports, port)) {
				return true
			}
		}
		return false
	}
	var rep Report
	matrices := map[connectivity.Port]*connectivity.Matrix{}
	for j, dst := range c.pods {
		for _, port := range checked[j] {
			m, ok := matrices[port]
			if !ok {
				m = r.Matrix(port)
				matrices[port] = m
			}
			for i, src := range c.pods {
				want := expected(src, j, port)
				if i == j || !want && !protected[j] {
					continue
				}
				got := m.Allowed(m.Pods[i], m.Pods[j])
				if got {
					rep.Allowed++
				} else {
					rep.Denied++
				}
				if got != want {
					rep.Violations = append(rep.Violations, fmt.Sprintf("%s/%s (%s) -> %s/%s on %s: %s, but the map %s",
						src.Meta.Namespace, src.Meta.Name, src.Identity, dst.Meta.Namespace, dst.Meta.Name, portName(port), verdict(got), observedOrNot(want)))
				}
			}
		}
	}
	return rep, nil
}

type checker struct {
	snap *snapshot.Snapshot
	pods []facts.Pod
}

// serverPods returns the indexes of the pods of a workload identity (of kind, or of
// any kind when it is empty, as a target names it), or of those a Service selects.
func (c checker) serverPods(p edges.Peer, kind string) ([]int, error) {
	var out []int
	if p.Kind == edges.PeerService {
		svc, _ := c.snap.Service(context.Background(), p.Namespace, p.Name)
		if svc == nil || len(svc.Spec.Selector) == 0 {
			return nil, fmt.Errorf("service %s/%s: no Service with a selector among the objects", p.Namespace, p.Name)
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for i, pod := range c.pods {
			if pod.Meta.Namespace == p.Namespace && sel.Matches(labels.Set(pod.Meta.Labels)) {
				out = append(out, i)
			}
		}
		return out, nil
	}
	for i, pod := range c.pods {
		if pod.Identity.Namespace == p.Namespace && pod.Identity.Name == p.Name && identity.KindMatches(kind, pod.Identity.Kind) {
			out = append(out, i)
		}
	}
	return out, nil
}

// protected returns the indexes of the pods of the servers the exported intents name.
func (c checker) protected(exported []v2beta1.ClientIntents) (map[int]bool, error) {
	out := map[int]bool{}
	for _, ci := range exported {
		for _, t := range ci.Spec.Targets {
			server, ok := intent.ServerOf(&ci, t)
			if !ok {
				continue
			}
			peer := edges.Peer{Kind: edges.PeerWorkload, Namespace: server.Namespace, Name: server.Name}
			if server.Service {
				peer.Kind = edges.PeerService
			}
			pods, err := c.serverPods(peer, server.Kind)
			if err != nil {
				return nil, err
			}
			for _, i := range pods {
				out[i] = true
			}
		}
	}
	return out, nil
}

// servicePorts returns the ports a Service forwards to its pods, and the one the
// observed call to port reaches: traffic through a Service arrives on its target port.
func (c checker) servicePorts(p edges.Peer, port connectivity.Port) ([]connectivity.Port, connectivity.Port, error) {
	svc, _ := c.snap.Service(context.Background(), p.Namespace, p.Name)
	var all []connectivity.Port
	reached, found := connectivity.Port{}, false
	for _, sp := range svc.Spec.Ports {
		target := connectivity.Port{Protocol: protocol(string(sp.Protocol))}
		switch {
		case sp.TargetPort.Type == intstr.String:
			target.Name = sp.TargetPort.StrVal
		case sp.TargetPort.IntVal == 0:
			target.Number = int(sp.Port) // the API server's default
		default:
			target.Number = int(sp.TargetPort.IntVal)
		}
		all = append(all, target)
		if int(sp.Port) == port.Number && target.Protocol == port.Protocol {
			reached, found = target, true
		}
	}
	if !found {
		return nil, port, fmt.Errorf("service %s/%s has no port %s, which the map observed", p.Namespace, p.Name, portName(port))
	}
	return all, reached, nil
}

func protocol(s string) corev1.Protocol {
	if s == "" {
		return corev1.ProtocolTCP
	}
	return corev1.Protocol(s)
}

func portName(p connectivity.Port) string {
	if p.Name != "" {
		return string(p.Protocol) + "/" + p.Name
	}
	return string(p.Protocol) + "/" + strconv.Itoa(p.Number)
}

func verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func observedOrNot(observed bool) string {
	if observed {
		return "observed the call"
	}
	return "observed no such call"
}
