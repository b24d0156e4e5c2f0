// Package clientlimit holds the operators' client-side limit on requests to the API
// server, and the flags that set it.
//
// Both operators ship with the limit off: the API server protects itself with Priority
// and Fairness (every supported Kubernetes version has it on), queueing or refusing with
// 429 and Retry-After, which client-go honours and retries. A client-side limit on top
// only makes a burst (a thousand ClientIntents applied at once, an operator start on a
// large cluster) wait on the client while the server has capacity to spare: at 50 QPS, a
// 1,000-server cluster took 18 times as long to enforce as the API server needed
// (docs/performance.md). Reads come from the informer caches, so the requests are the
// writes enforcement needs, and a cluster that wants a ceiling anyway sets one.
package clientlimit

import (
	"flag"

	"k8s.io/client-go/rest"
)

// Limit is the client-side request limit of one operator.
type Limit struct {
	// QPS is the sustained rate of requests; zero or less turns the limit off.
	QPS float64
	// Burst is how many requests may go above QPS at once, when QPS is set.
	Burst int
}

// Default is the shipped limit: off.
var Default = Limit{QPS: 0, Burst: 100}

// Bind registers --kube-api-qps and --kube-api-burst on fs, with Default as defaults,
// and returns the limit they fill in.
func Bind(fs *flag.FlagSet) *Limit {
	l := new(Limit)
	*l = Default
	fs.Float64Var(&l.QPS, "kube-api-qps", l.QPS, "queries per second to the API server; 0 (the default) or less sets no client-side limit and leaves the pace to the API server's Priority and Fairness")
	fs.IntVar(&l.Burst, "kube-api-burst", l.Burst, "burst of queries to the API server above --kube-api-qps, when that is above 0")
	return l
}

// Apply sets the limit on cfg. client-go reads a QPS of 0 as its own default of 5, so
// "off" is written as a negative QPS, which it reads as no limit.
func (l Limit) Apply(cfg *rest.Config) {
	if l.QPS <= 0 {
		cfg.QPS, cfg.Burst = -1, 0
		return
	}
	cfg.QPS, cfg.Burst = float32(l.QPS), l.Burst
}
