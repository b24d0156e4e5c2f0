// Package tutorial holds the public network-policy tutorial: a server behind a Service, a
// client that declares its call, and a client that does not.
package tutorial

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Namespace is the tutorial's namespace.
const Namespace = "otterize-tutorial-npol"

// Deployment returns a one-replica Deployment whose pods carry app=<name>.
func Deployment(namespace, name string, port int32) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "nginx:1.27"}}},
			},
		},
	}
	if port > 0 {
		d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port}}
	}
	return d
}

// Objects returns the tutorial's namespace, workloads and Service, in creation order.
func Objects() []client.Object {
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
		Deployment(Namespace, "server", 80),
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "server"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "server"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}},
			},
		},
		Deployment(Namespace, "client", 0),
		Deployment(Namespace, "client-other", 0),
	}
}

// Intents returns the tutorial's ClientIntents: client calls the Service server.
func Intents() *v2beta1.ClientIntents {
	return &v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "client"},
		Spec: v2beta1.ClientIntentsSpec{
			Workload: v2beta1.Workload{Name: "client"},
			Targets:  []v2beta1.Target{{Service: &v2beta1.ServiceTarget{Name: "server"}}},
		},
	}
}

// Create creates the tutorial's objects and waits until each Deployment has a pod.
func Create(ctx context.Context, c client.Client) error {
	for _, o := range Objects() {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return WaitForPods(ctx, c, Namespace, 3)
}

// WaitForPods waits until namespace holds at least n pods.
func WaitForPods(ctx context.Context, c client.Client, namespace string, n int) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		return len(pods.Items) >= n, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d pods in %s (is kube-controller-manager running?): %w", n, namespace, err)
	}
	return nil
}
