package logs

import (
	"errors"
	"slices"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// use writes the same lines through l: values and names bound in turn, at two levels.
func use(l logr.Logger) {
	c := l.WithName("controller").WithValues("controller", "networkpolicy", "group", "")
	r := c.WithValues("namespace", "ns", "name", "api").WithName("reconcile")
	r.Info("applied NetworkPolicy", "policy", "access-to.api")
	r.V(1).Info("verbose detail", "n", 3)
	r.V(2).Info("not written")
	r.WithValues("attempt", 2).Error(errors.New("conflict"), "labelling pod", "pod", "api-1")
	c.Info("no request values")
}

// Lines written through Lazy are those written through the logger itself.
func TestLazyWritesTheSameLines(t *testing.T) {
	record := func(wrap func(logr.Logger) logr.Logger) []string {
		var lines []string
		l := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{Verbosity: 1})
		use(wrap(l))
		return lines
	}
	eager := record(func(l logr.Logger) logr.Logger { return l })
	lazy := record(Lazy)
	if len(eager) != 4 || !slices.Equal(eager, lazy) {
		t.Errorf("lines through Lazy:\n%q\nthrough the logger:\n%q", lazy, eager)
	}
}

// counting is a sink that counts how often values are bound to it.
type counting struct {
	logr.LogSink
	bound *int
}

func (c counting) WithValues(kv ...any) logr.LogSink {
	*c.bound++
	return counting{LogSink: c.LogSink.WithValues(kv...), bound: c.bound}
}

// A logger whose values are never written never binds them to the sink.
func TestLazyBindsValuesOnlyForLinesWritten(t *testing.T) {
	n := 0
	base := funcr.New(func(string, string) {}, funcr.Options{})
	l := Lazy(logr.New(counting{LogSink: base.GetSink(), bound: &n}))
	for i := range 100 {
		r := l.WithValues("controller", "podlabels").WithValues("name", i)
		r.V(3).Info("not written")
	}
	if n != 0 {
		t.Errorf("values were bound %d times for no line written", n)
	}
	l.WithValues("name", "api").Info("written")
	if n != 1 {
		t.Errorf("values were bound %d times for one line", n)
	}
}
