package credentials

import (
	"context"
	"math/rand"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pods of one identity created in the same second, asking for different DNS names, give
// the same entry whatever order the cache lists them in: a choice that followed the
// listing order would rewrite the entry on every reconcile.
func TestDesiredEntriesIgnoreListingOrder(t *testing.T) {
	r := &EntryReconciler{Options: Options{
		TrustDomain: "example.org", SPIFFEIDFormat: DefaultSPIFFEIDFormat, DefaultTTL: time.Hour,
		DNS: DNSPolicy{ClusterDomain: "cluster.local"},
	}}
	at := metav1.NewTime(time.Unix(1_700_000_000, 0))
	var pods []corev1.Pod
	for i, dns := range []string{"a.shop", "b.shop", "c.shop.svc", "*.d.shop.svc"} {
		pods = append(pods, corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "db-" + string(rune('a'+i)), CreationTimestamp: at,
			Annotations: map[string]string{
				Prefix + AnnSecretName: "db-tls", Prefix + AnnDNSNames: dns,
				"intents.otterize.com/workload-name": "db",
			},
		}})
	}
	want, err := r.Desired(context.Background(), pods)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 1 || !reflect.DeepEqual(want[0].DNSNames, []string{"db.shop", "a.shop"}) {
		t.Fatalf("entries %+v; want one, from the first pod by name (a.shop)", want)
	}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 50; i++ {
		rnd.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
		got, err := r.Desired(context.Background(), pods)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("listing order %v gives %+v, want %+v", names(pods), got, want)
		}
	}
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
