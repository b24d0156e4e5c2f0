// Package render writes the analysis' answers for people and tools: plain text for a
// terminal, Markdown for a pull-request comment, DOT and Mermaid for graphs.
package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/intentguard/intentguard/internal/analysis"
)

// points are the enforcement points in the order reports list them.
var points = []struct {
	point analysis.Point
	title string
}{{analysis.NetworkPolicy, "NetworkPolicy"}, {analysis.Kafka, "Kafka"}, {analysis.Istio, "Istio"}}

func ofPoint(ts []analysis.Tuple, p analysis.Point) []analysis.Tuple {
	var out []analysis.Tuple
	for _, t := range ts {
		if t.Point == p {
			out = append(out, t)
		}
	}
	return out
}

// grant says what grants a tuple: the object and the ClientIntents declaring it.
func grant(t analysis.Tuple) string {
	kind := "NetworkPolicy"
	switch t.Point {
	case analysis.Kafka:
		kind = "KafkaServerConfig"
	case analysis.Istio:
		kind = "AuthorizationPolicy"
	}
	s := kind + " " + t.Object
	if len(t.Intents) > 0 {
		s += ", ClientIntents " + strings.Join(t.Intents, ", ")
	}
	return s
}

// Explanations writes explain's answer as text.
func Explanations(w io.Writer, es []analysis.Explanation) {
	for i, e := range es {
		if i > 0 {
			fmt.Fprintln(w)
		}
		explanation(w, e, "")
	}
}

func explanation(w io.Writer, e analysis.Explanation, indent string) {
	what := e.Port
	switch e.Point {
	case analysis.Kafka:
		what = "topic " + e.Query.Topic + " " + e.Query.Operation
	case analysis.Istio:
		what = "requests"
	}
	fmt.Fprintf(w, "%s%s -> %s %s: %s (%s)\n", indent, e.Query.From, e.Query.To, what, strings.ToUpper(e.Verdict), e.Point)
	for _, c := range e.Chain {
		fmt.Fprintf(w, "%s  %s\n", indent, c)
	}
	for _, m := range e.Missing {
		fmt.Fprintf(w, "%s  missing: %s\n", indent, m)
	}
}

// Failures writes the assertions that fail, each with the chain that breaks it.
func Failures(w io.Writer, fs []analysis.Failure) {
	for _, f := range fs {
		fmt.Fprintf(w, "assertion failed: %s must be %s\n", f.Assertion, f.Want)
		if f.Error != "" {
			fmt.Fprintf(w, "  cannot evaluate: %s\n", f.Error)
		}
		for _, e := range f.Explanations {
			explanation(w, e, "  ")
		}
	}
}
