package aggregator

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

const (
	// BatchPath is where agents post batches (observation.Batch as JSON).
	BatchPath = "/v1/batches"
	// EdgesPath is where the map is read (a JSON array of edges).
	EdgesPath = "/v1/edges"
	// maxBatchBytes bounds a batch's size: a node's agent sends a few thousand
	// observations per batch, far below this.
	maxBatchBytes = 32 << 20
)

// Handler serves the agents' batches and the map.
func (a *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(BatchPath, a.BatchHandler())
	mux.Handle(EdgesPath, a.EdgesHandler())
	return mux
}

// BatchHandler serves the agents' batches only, for a port the map is not read from.
func (a *Aggregator) BatchHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+BatchPath, a.serveBatch)
	return mux
}

// EdgesHandler serves the map only, for a port agents do not post to.
func (a *Aggregator) EdgesHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+EdgesPath, a.serveEdges)
	return mux
}

func (a *Aggregator) serveBatch(w http.ResponseWriter, r *http.Request) {
	var b observation.Batch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	if err := dec.Decode(&b); err != nil {
		http.Error(w, "decoding the batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := a.Ingest(r.Context(), b)
	switch {
	case errors.Is(err, ErrUnnamed):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		a.log.Error(err, "recording a batch", "agent", b.Agent, "seq", b.Seq)
		http.Error(w, "recording the batch failed; send it again", http.StatusServiceUnavailable)
		return
	}
	if res.Dropped > 0 {
		a.log.Info("dropped connections whose time is outside what can be attributed (check the node's clock)", "agent", b.Agent, "seq", b.Seq, "dropped", res.Dropped)
	}
	writeJSON(w, res)
}

func (a *Aggregator) serveEdges(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, a.Edges())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	// The status line is sent with the first byte: an encoding failure can only be
	// seen by the client as a truncated body.
	_ = json.NewEncoder(w).Encode(v)
}
