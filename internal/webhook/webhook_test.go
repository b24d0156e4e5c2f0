package webhook

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

func intents(name, workload, kind string, targets ...v2beta1.Target) v2beta1.ClientIntents {
	return v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: workload, Kind: kind}, Targets: targets},
	}
}

// TestOneClientIntentsPerWorkload: a workload's calls live in one ClientIntents; an empty
// kind names every kind, so it collides with any kind of the same name.
func TestOneClientIntentsPerWorkload(t *testing.T) {
	existing := []v2beta1.ClientIntents{intents("a", "client", "Deployment"), intents("b", "batch", "")}
	for _, tc := range []struct {
		ci   v2beta1.ClientIntents
		want string
	}{
		{intents("new", "client", "Deployment"), `ClientIntents "a" in namespace "ns" already declares the calls of workload "client" (kind Deployment)`},
		{intents("new", "client", ""), `ClientIntents "a"`},
		{intents("new", "batch", "CronJob"), `ClientIntents "b" in namespace "ns" already declares the calls of workload "batch";`},
		{intents("new", "client", "StatefulSet"), ""},
		{intents("new", "other", ""), ""},
		{intents("a", "client", "Deployment"), ""}, // itself, on update
	} {
		errs := ValidateClientIntents(&tc.ci, existing, Paths{})
		got := errs.ToAggregate()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s %s/%s refused: %v", tc.ci.Name, tc.ci.Spec.Workload.Kind, tc.ci.Spec.Workload.Name, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s %s/%s: %v, want %q", tc.ci.Name, tc.ci.Spec.Workload.Kind, tc.ci.Spec.Workload.Name, got, tc.want)
		}
	}
	deleting := intents("a", "client", "Deployment")
	deleting.DeletionTimestamp = &metav1.Time{}
	if errs := ValidateClientIntents(new(intents("new", "client", "")), []v2beta1.ClientIntents{deleting}, Paths{}); len(errs) > 0 {
		t.Errorf("an object being deleted blocks its replacement: %v", errs)
	}
}

// TestTargetNamespaces: the part after the dot must be a namespace name.
func TestTargetNamespaces(t *testing.T) {
	long := strings.Repeat("a", 64)
	for name, ok := range map[string]bool{
		"server": true, "server.prod": true, "server." + long: false, long + ".prod": false,
	} {
		ci := intents("x", "c", "",
			v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name}},
			v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}},
			v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: name}},
			v2beta1.Target{Internet: &v2beta1.InternetTarget{IPs: []string{"10.0.0.0/8"}}})
		errs := ValidateClientIntents(&ci, nil, Paths{})
		if ok && len(errs) > 0 {
			t.Errorf("%q refused: %v", name, errs)
		}
		if !ok && len(errs) != 3 {
			t.Errorf("%q: %d errors, want one per named target: %v", name, len(errs), errs)
		}
	}
}

// TestOneProtectedServicePerServer mirrors the ClientIntents rule for ProtectedServices.
func TestOneProtectedServicePerServer(t *testing.T) {
	ps := func(name, server, kind string) v2beta1.ProtectedService {
		return v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: v2beta1.ProtectedServiceSpec{Name: server, Kind: kind}}
	}
	existing := []v2beta1.ProtectedService{ps("p", "server", "")}
	if errs := ValidateProtectedService(new(ps("q", "server", "Deployment")), existing); len(errs) != 1 || !strings.Contains(errs[0].Error(), `ProtectedService "p" in namespace "ns" already protects "server"`) {
		t.Errorf("duplicate: %v", errs)
	}
	if errs := ValidateProtectedService(new(ps("q", "other", "")), existing); len(errs) != 0 {
		t.Errorf("different server: %v", errs)
	}
}

// TestPathsOfV1Files: errors about a v1 file name its fields, spec.service and spec.calls.
func TestPathsOfV1Files(t *testing.T) {
	ci := intents("new", "client", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web." + strings.Repeat("n", 64)}})
	errs := ValidateClientIntents(&ci, []v2beta1.ClientIntents{intents("a", "client", "")}, Paths{V1: true})
	if len(errs) != 2 || errs[0].Field != "spec.calls[0].name" || errs[1].Field != "spec.service" {
		t.Errorf("%v", errs)
	}
	errs = ValidateClientIntents(&ci, []v2beta1.ClientIntents{intents("a", "client", "")}, Paths{})
	if len(errs) != 2 || errs[0].Field != "spec.targets[0].service.name" || errs[1].Field != "spec.workload" {
		t.Errorf("%v", errs)
	}
}
