package intent

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

func TestServers(t *testing.T) {
	ci := &v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
		Spec: v2beta1.ClientIntentsSpec{
			Workload: v2beta1.Workload{Name: "checkout"},
			Targets: []v2beta1.Target{
				{Kubernetes: &v2beta1.KubernetesTarget{Name: "shipping"}},
				{Kubernetes: &v2beta1.KubernetesTarget{Name: "ledger.finance", Kind: "StatefulSet"}},
				{Service: &v2beta1.ServiceTarget{Name: "nginx"}},
				{Kafka: &v2beta1.KafkaTarget{Name: "kafka.kafka"}},
				{Internet: &v2beta1.InternetTarget{Domains: []string{"api.example.com"}}},
				{Kubernetes: &v2beta1.KubernetesTarget{Name: "shipping.shop"}},
			},
		},
	}
	got := Servers(ci)
	want := []Server{
		{Ref: Ref{"finance", "ledger", "StatefulSet"}},
		{Ref: Ref{"kafka", "kafka", ""}},
		{Ref: Ref{"shop", "nginx", ""}, Service: true},
		{Ref: Ref{"shop", "shipping", ""}},
	}
	if len(got) != len(want) {
		t.Fatalf("Servers() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Servers()[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, s := range []Server{
		{Ref: Ref{"ns", "web", ""}},
		{Ref: Ref{"ns", "web", "Deployment"}},
		{Ref: Ref{"ns", "web", ""}, Service: true},
	} {
		got, err := ParseKey(s.Namespace, s.Key())
		if err != nil || got != s {
			t.Errorf("ParseKey(Key(%v)) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "workload/", "pod//x", "service//"} {
		if _, err := ParseKey("ns", bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestCovers(t *testing.T) {
	ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: v2beta1.ProtectedServiceSpec{Name: "web", Kind: "Deployment"}}
	for _, tt := range []struct {
		s    Server
		want bool
	}{
		{Server{Ref: Ref{"ns", "web", ""}}, true},
		{Server{Ref: Ref{"ns", "web", "Deployment"}}, true},
		{Server{Ref: Ref{"ns", "web", "StatefulSet"}}, false},
		{Server{Ref: Ref{"ns", "web", ""}, Service: true}, true},
		{Server{Ref: Ref{"other", "web", ""}}, false},
		{Server{Ref: Ref{"ns", "api", ""}}, false},
	} {
		if got := Covers(ps, tt.s); got != tt.want {
			t.Errorf("Covers(%v) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
