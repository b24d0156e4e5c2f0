package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// apiWrites counts the write requests the API server has served, by resource and verb
// ("networkpolicies APPLY", "clientintents/status UPDATE"), from its own metrics. The
// difference of two counts says what a phase cost the server, whoever the writer was.
type apiWrites map[string]float64

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// scrapeAPIWrites reads the API server's apiserver_request_total counters.
func scrapeAPIWrites(ctx context.Context, cfg *rest.Config) (apiWrites, error) {
	unlimited := rest.CopyConfig(cfg)
	unlimited.QPS = -1
	cs, err := kubernetes.NewForConfig(unlimited)
	if err != nil {
		return nil, fmt.Errorf("API server metrics client: %w", err)
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scraping API server metrics: %w", err)
	}
	metrics, err := process.ParseMetrics(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("reading API server metrics: %w", err)
	}
	out := apiWrites{}
	for _, metric := range metrics {
		if metric.Name != "apiserver_request_total" {
			continue
		}
		l := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(metric.Labels, -1) {
			l[m[1]] = m[2]
		}
		switch l["verb"] {
		case "GET", "LIST", "WATCH", "CONNECT", "":
			continue
		}
		key := l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key+" "+l["verb"]] += metric.Value
	}
	return out, nil
}

// writeSplit sorts write requests by what they are, as the performance table reports
// them. In the bulk phase the generator writes only ClientIntents; everything else is
// the operator's.
type writeSplit struct {
	// Policies are NetworkPolicy and AuthorizationPolicy writes.
	Policies float64 `json:"policies"`
	// PodLabels are pod updates and patches (pod creates are the generator's).
	PodLabels float64 `json:"podLabels"`
	// Status are writes to any status subresource.
	Status float64 `json:"status"`
	Events float64 `json:"events"`
	// Intents are ClientIntents writes other than status: the generator's creates.
	Intents float64 `json:"intents"`
	Other   float64 `json:"other"`
}

// split sorts the counts into a writeSplit.
func (w apiWrites) split() writeSplit {
	var s writeSplit
	for k, n := range w {
		kind, verb, _ := strings.Cut(k, " ")
		resource, sub, _ := strings.Cut(kind, "/")
		switch {
		case sub == "status":
			s.Status += n
		case sub != "":
			s.Other += n
		case resource == "networkpolicies" || resource == "authorizationpolicies":
			s.Policies += n
		case resource == "pods" && verb != "POST" && verb != "DELETE":
			s.PodLabels += n
		case resource == "events":
			s.Events += n
		case resource == "clientintents":
			s.Intents += n
		default:
			s.Other += n
		}
	}
	return s
}

// minus returns the writes made since base, leaving out kinds with none.
func (w apiWrites) minus(base apiWrites) apiWrites {
	out := apiWrites{}
	for k, v := range w {
		if d := v - base[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// String lists the counts, largest first.
func (w apiWrites) String() string { return w.top(len(w)) }

// top lists the n largest counts, largest first, and how many kinds it left out.
func (w apiWrites) top(n int) string {
	keys := slices.Collect(maps.Keys(w))
	slices.SortFunc(keys, func(a, b string) int {
		if w[a] != w[b] {
			if w[a] > w[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more kinds", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", k, w[k]))
	}
	return strings.Join(parts, ", ")
}
