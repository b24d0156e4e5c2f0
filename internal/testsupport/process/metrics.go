package process

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Metric is one sample line of a Prometheus text exposition.
type Metric struct {
	Name string
	// Labels is the label set as written, braces included ("" when there is none).
	Labels string
	Value  float64
}

// ParseMetrics reads a Prometheus text exposition, as the operators and kube-apiserver
// serve on /metrics; comments and lines it cannot read are left out.
func ParseMetrics(r io.Reader) ([]Metric, error) {
	var out []Metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m, ok := parseMetric(sc.Text()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func parseMetric(line string) (Metric, bool) {
	if strings.HasPrefix(line, "#") {
		return Metric{}, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return Metric{}, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return Metric{}, false
	}
	head := line[:sp]
	if i := strings.IndexByte(head, '{'); i >= 0 {
		return Metric{Name: head[:i], Labels: head[i:], Value: v}, true
	}
	return Metric{Name: head, Value: v}, true
}
