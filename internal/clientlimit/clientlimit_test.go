package clientlimit

import (
	"flag"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// The flags fill in the limit, and Apply turns "off" into what client-go reads as no
// limit, never into its default of 5 QPS.
func TestFlagsSetTheClientLimit(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wantQPS   float32
		wantBurst int
	}{
		{nil, -1, 0},
		{[]string{"--kube-api-qps=0"}, -1, 0},
		{[]string{"--kube-api-qps=-5", "--kube-api-burst=7"}, -1, 0},
		{[]string{"--kube-api-qps=50"}, 50, 100},
		{[]string{"--kube-api-qps=200", "--kube-api-burst=400"}, 200, 400},
	} {
		fs := flag.NewFlagSet("operator", flag.ContinueOnError)
		l := Bind(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg := &rest.Config{QPS: 20, Burst: 30} // what controller-runtime's loader sets
		l.Apply(cfg)
		if cfg.QPS != tc.wantQPS || cfg.Burst != tc.wantBurst {
			t.Errorf("%v: QPS %v burst %d, want %v and %d", tc.args, cfg.QPS, cfg.Burst, tc.wantQPS, tc.wantBurst)
		}
	}
}

// A config with the limit off builds a client without a rate limiter.
func TestOffBuildsAnUnlimitedClient(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	Default.Apply(cfg)
	c, err := rest.RESTClientFor(withCodec(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if c.GetRateLimiter() != nil {
		t.Fatalf("rate limiter %T with the limit off", c.GetRateLimiter())
	}
	cfg = &rest.Config{Host: "https://127.0.0.1:1"}
	Limit{QPS: 50, Burst: 100}.Apply(cfg)
	if c, err = rest.RESTClientFor(withCodec(cfg)); err != nil || c.GetRateLimiter() == nil {
		t.Fatalf("no rate limiter at 50 QPS (%v)", err)
	}
}

// withCodec completes cfg with what a REST client of the core group needs.
func withCodec(cfg *rest.Config) *rest.Config {
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.APIPath = "/api"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return cfg
}
