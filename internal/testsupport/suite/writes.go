package suite

import (
	"net/http"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// Counted returns a copy of target whose API writes the returned counter counts, with
// the client's rate limits raised (200 requests a second, bursts of 400) so that the
// operator under test, not its client's limiter, sets the pace.
func Counted(target *rest.Config) (*rest.Config, *WriteCounter) {
	counter := &WriteCounter{}
	cfg := rest.CopyConfig(target)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.WrapTransport = counter.Wrap
	return cfg, counter
}

// WriteCounter counts the mutating API requests that the API server carried out; a
// create refused because the name is taken changes nothing and is not counted. Install it
// with rest.Config.WrapTransport = counter.Wrap.
type WriteCounter struct {
	rt     http.RoundTripper
	writes atomic.Int64
	mu     sync.Mutex
	log    []string
}

// Wrap makes the counter the transport in front of rt.
func (w *WriteCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	w.rt = rt
	return w
}

// RoundTrip implements http.RoundTripper.
func (w *WriteCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return resp, err
	}
	if err == nil && resp.StatusCode < 400 {
		w.writes.Add(1)
		w.mu.Lock()
		w.log = append(w.log, req.Method+" "+req.URL.Path)
		w.mu.Unlock()
	}
	return resp, err
}

// Writes is the number of writes so far.
func (w *WriteCounter) Writes() int64 { return w.writes.Load() }

// Requests lists the writes so far, as "METHOD path", in order.
func (w *WriteCounter) Requests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}
