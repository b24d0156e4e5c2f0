package process

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	exposition := `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 42
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 7
workqueue_depth{controller="policy",name="policy"} 0
go_memstats_heap_inuse_bytes 1.2345e+07
not a metric line
broken{le="+Inf"} NaNx
`
	got, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := []Metric{
		{Name: "rest_client_requests_total", Labels: `{code="200",host="127.0.0.1:6443",method="GET"}`, Value: 42},
		{Name: "rest_client_requests_total", Labels: `{code="201",host="127.0.0.1:6443",method="POST"}`, Value: 7},
		{Name: "workqueue_depth", Labels: `{controller="policy",name="policy"}`, Value: 0},
		{Name: "go_memstats_heap_inuse_bytes", Value: 12345000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}
