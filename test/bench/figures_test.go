package main

import (
	"math/rand/v2"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Go's flag package prints a default only when it is not the zero value; the bench must
// read either, and refuse a binary without the flags.
func TestParseLimit(t *testing.T) {
	usage := func(qpsLine, burstLine string) []byte {
		return []byte("Usage of intents-operator:\n  -kafka-resync-period duration\n    \tbrokers (default 5m0s)\n" +
			"  -kube-api-burst int\n    \t" + burstLine + "\n  -kube-api-qps float\n    \t" + qpsLine + "\n  -max-concurrent-reconciles int\n    \treconciles (default 4)\n")
	}
	for _, tc := range []struct {
		name  string
		usage []byte
		want  clientLimit
		fail  bool
	}{
		{name: "shipped 50/100", usage: usage("queries per second to the API server (default 50)", "burst of queries to the API server (default 100)"), want: clientLimit{QPS: 50, Burst: 100}},
		{name: "fractional and unlimited", usage: usage("queries per second (default 12.5)", "burst (default -1)"), want: clientLimit{QPS: 12.5, Burst: -1}},
		{name: "zero values print no default", usage: usage("queries per second", "burst of queries"), want: clientLimit{}},
		{name: "another flag's default is not taken", usage: usage("queries per second", "burst (default 7)"), want: clientLimit{Burst: 7}},
		{name: "no such flag", usage: []byte("Usage:\n  -kubeconfig string\n    \tpath\n"), fail: true},
		{name: "unreadable default", usage: usage("queries (default fast)", "burst (default 1)"), fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLimit(tc.usage)
			if (err != nil) != tc.fail {
				t.Fatalf("error %v, want failure %v", err, tc.fail)
			}
			if !tc.fail && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	got := apiWrites{
		"networkpolicies POST": 10, "networkpolicies APPLY": 2, "authorizationpolicies PATCH": 3,
		"pods PATCH": 4, "pods POST": 100, "pods DELETE": 1,
		"clientintents/status PATCH": 5, "protectedservices/status PATCH": 1,
		"events POST": 6, "events PATCH": 1, "clientintents POST": 7,
		"leases PUT": 2, "namespaces/finalize PUT": 1,
	}.split()
	want := writeSplit{Policies: 15, PodLabels: 4, Status: 6, Events: 7, Intents: 7, Other: 104}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		lags     []time.Duration
		notReady int
		want     lagSummary
	}{
		{name: "none", notReady: 3, want: lagSummary{NotReady: 3}},
		{name: "one", lags: []time.Duration{40 * ms}, want: lagSummary{MaxMs: 40, P99Ms: 40}},
		{name: "early ones counted", lags: []time.Duration{-5 * ms, 10 * ms, -1 * ms}, want: lagSummary{MaxMs: 10, P99Ms: 10, Early: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.lags, tc.notReady); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// At 200 lags the nearest-rank 99th percentile is the 198th smallest.
	var lags []time.Duration
	for i := 200; i >= 1; i-- {
		lags = append(lags, time.Duration(i)*ms)
	}
	if got := summarize(lags, 0); got.P99Ms != 198 || got.MaxMs != 200 {
		t.Fatalf("200 lags: got %+v, want p99 198 and max 200", got)
	}
}

// Whatever the lags, the 99th percentile lies between the median and the maximum, and is
// one of the lags.
func TestSummarizeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		lags := make([]time.Duration, 1+r.IntN(300))
		set := map[float64]bool{}
		for i := range lags {
			lags[i] = time.Duration(r.IntN(4000)-500) * time.Millisecond
			set[float64(lags[i].Milliseconds())] = true
		}
		s := summarize(lags, 0)
		sorted := append([]time.Duration(nil), lags...)
		med := float64(median(durationsMs(sorted)))
		if s.P99Ms > s.MaxMs || s.P99Ms < med || !set[s.P99Ms] {
			t.Fatalf("lags %v: summary %+v, median %v", lags, s, med)
		}
	}
}

func TestLabelled(t *testing.T) {
	bw := newBulkWatch(nil, []podLabel{{ns: "n", name: "p", labels: map[string]string{"x": "1", "y": "2"}}})
	pod := func(name string, labels map[string]string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: name, Labels: labels}}
	}
	for _, tc := range []struct {
		name string
		pod  *metav1.PartialObjectMetadata
		want bool
	}{
		{"all labels, and more", pod("p", map[string]string{"x": "1", "y": "2", "app": "w"}), true},
		{"one missing", pod("p", map[string]string{"x": "1"}), false},
		{"another value", pod("p", map[string]string{"x": "1", "y": "3"}), false},
		{"a pod not needed", pod("q", map[string]string{"x": "1", "y": "2"}), false},
	} {
		if got := bw.labelled(tc.pod); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func durationsMs(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, x := range d {
		out[i] = float64(x.Milliseconds())
	}
	return out
}

// The watch's bookkeeping: convergence once every expected policy is up to date and
// every pod labelled, a policy that goes bad again undoes it, and each ClientIntents' lag is taken from the
// last write among the policies it needs to the time it last turned Ready.
func TestBulkWatchBookkeeping(t *testing.T) {
	a, b := client.ObjectKey{Namespace: "n", Name: "a"}, client.ObjectKey{Namespace: "n", Name: "b"}
	ci1, ci2, ci3 := client.ObjectKey{Namespace: "n", Name: "c1"}, client.ObjectKey{Namespace: "n", Name: "c2"}, client.ObjectKey{Namespace: "n", Name: "c3"}
	pod := client.ObjectKey{Namespace: "n", Name: "p-0"}
	bw := newBulkWatch(map[client.ObjectKey]*networkingv1.NetworkPolicy{a: {}, b: {}}, []podLabel{{ns: "n", name: "p-0", labels: map[string]string{"x": "1"}}})
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	converged := func() bool {
		select {
		case <-bw.converged:
			return true
		default:
			return false
		}
	}
	bw.notePolicy(a, true, at(10))
	bw.notePolicy(client.ObjectKey{Namespace: "n", Name: "stray"}, true, at(15))
	bw.notePolicy(b, false, at(20))
	if converged() {
		t.Fatal("converged with b not up to date")
	}
	bw.notePolicy(a, false, at(25))
	bw.notePolicy(b, true, at(30))
	if converged() {
		t.Fatal("converged after a went bad again")
	}
	bw.notePolicy(a, true, at(50))
	if converged() {
		t.Fatal("converged with the pod not labelled")
	}
	bw.notePod(client.ObjectKey{Namespace: "n", Name: "b"}, true, at(52)) // a pod named like a policy
	if converged() {
		t.Fatal("converged on a pod enforcement does not need")
	}
	bw.notePod(pod, true, at(55))
	if !converged() {
		t.Fatal("not converged with both policies up to date and the pod labelled")
	}
	bw.notePolicy(a, true, at(60)) // a rewrite after convergence still moves a's last write
	bw.noteIntents(ci1, true, at(40))
	bw.noteIntents(ci1, false, at(45))
	bw.noteIntents(ci1, true, at(100)) // Ready again: the later time counts
	bw.noteIntents(ci2, true, at(35))  // Ready before b's last write
	bw.noteIntents(ci2, true, at(90))  // still Ready: the first time stays
	lags, notReady := bw.readyLags(map[client.ObjectKey][]client.ObjectKey{ci1: {a, b}, ci2: {b}, ci3: {a}})
	if notReady != 1 {
		t.Fatalf("%d not Ready, want 1 (c3)", notReady)
	}
	got := map[time.Duration]bool{}
	for _, l := range lags {
		got[l] = true
	}
	if len(lags) != 2 || !got[40*time.Millisecond] || !got[5*time.Millisecond] {
		t.Fatalf("lags %v, want 40ms (c1: a at 60, Ready at 100) and 5ms (c2: b at 30, Ready at 35)", lags)
	}
}
