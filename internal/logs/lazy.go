// Package logs holds the operators' logging plumbing.
package logs

import (
	"slices"

	"github.com/go-logr/logr"
)

// Lazy returns l with key/value pairs bound by WithValues kept aside and handed to l's
// sink only when a line is written. controller-runtime binds the controller and the
// request to a logger for every reconcile, and a zap sink encodes them at once: a tenth
// of what the operator allocated in a bulk, for reconciles that mostly log nothing.
// The lines written are the same.
func Lazy(l logr.Logger) logr.Logger {
	if l.GetSink() == nil {
		return l
	}
	return logr.New(&lazySink{sink: l.GetSink()})
}

// lazySink is a LogSink that defers WithValues.
type lazySink struct {
	sink logr.LogSink
	// values are the pairs bound since sink, in order.
	values []any
}

var (
	_ logr.LogSink          = (*lazySink)(nil)
	_ logr.CallDepthLogSink = (*lazySink)(nil)
)

// Init implements logr.LogSink; the sink sits one call further from the caller.
func (s *lazySink) Init(info logr.RuntimeInfo) {
	info.CallDepth++
	s.sink.Init(info)
}

// Enabled implements logr.LogSink.
func (s *lazySink) Enabled(level int) bool { return s.sink.Enabled(level) }

// Info implements logr.LogSink.
func (s *lazySink) Info(level int, msg string, keysAndValues ...any) {
	s.bound().Info(level, msg, keysAndValues...)
}

// Error implements logr.LogSink.
func (s *lazySink) Error(err error, msg string, keysAndValues ...any) {
	s.bound().Error(err, msg, keysAndValues...)
}

// WithValues implements logr.LogSink.
func (s *lazySink) WithValues(keysAndValues ...any) logr.LogSink {
	return &lazySink{sink: s.sink, values: append(slices.Clip(s.values), keysAndValues...)}
}

// WithName implements logr.LogSink. Names and values are separate in a line, so the
// name is applied at once and the values stay deferred.
func (s *lazySink) WithName(name string) logr.LogSink {
	return &lazySink{sink: s.sink.WithName(name), values: s.values}
}

// WithCallDepth implements logr.CallDepthLogSink.
func (s *lazySink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.sink.(logr.CallDepthLogSink); ok {
		return &lazySink{sink: cd.WithCallDepth(depth), values: s.values}
	}
	return s
}

// bound is the sink with the deferred values bound.
func (s *lazySink) bound() logr.LogSink {
	if len(s.values) == 0 {
		return s.sink
	}
	return s.sink.WithValues(s.values...)
}
