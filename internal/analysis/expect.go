package analysis

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Expectations is an assertions file: accesses that must stay allowed and accesses that
// must stay denied, whatever the intents say.
type Expectations struct {
	Expect struct {
		Allow []Assertion `json:"allow"`
		Deny  []Assertion `json:"deny"`
	} `json:"expect"`
}

// Assertion is one access: from and to as name.namespace, ns/name or ns/name[Kind], and
// a port (NetworkPolicy) or a topic and operation (Kafka).
type Assertion struct {
	From  string              `json:"from"`
	To    string              `json:"to"`
	Port  *intstr.IntOrString `json:"port,omitempty"`
	Topic string              `json:"topic,omitempty"`
	Op    string              `json:"op,omitempty"`
}

// String renders the assertion on one line.
func (a Assertion) String() string {
	switch {
	case a.Topic != "":
		return fmt.Sprintf("%s -> %s topic %s %s", a.From, a.To, a.Topic, a.Op)
	case a.Port != nil:
		return fmt.Sprintf("%s -> %s port %s", a.From, a.To, a.Port.String())
	}
	return fmt.Sprintf("%s -> %s", a.From, a.To)
}

// LoadExpectations reads an assertions file.
func LoadExpectations(path string) (*Expectations, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the assertions file: %w", err)
	}
	var e Expectations
	if err := yaml.UnmarshalStrict(b, &e); err != nil {
		return nil, fmt.Errorf("reading the assertions file %s: %w", path, err)
	}
	for _, list := range [][]Assertion{e.Expect.Allow, e.Expect.Deny} {
		for _, a := range list {
			if _, err := a.query(); err != nil {
				return nil, fmt.Errorf("assertions file %s: %s: %w", path, a, err)
			}
		}
	}
	return &e, nil
}

func (a Assertion) query() (Query, error) {
	from, err := ParseEndpoint(a.From)
	if err != nil {
		return Query{}, fmt.Errorf("from: %w", err)
	}
	to, err := ParseEndpoint(a.To)
	if err != nil {
		return Query{}, fmt.Errorf("to: %w", err)
	}
	q := Query{From: from, To: to, Topic: a.Topic, Operation: a.Op}
	if a.Port != nil {
		q.Port = a.Port.String()
	}
	if (a.Topic == "") != (a.Op == "") {
		return q, fmt.Errorf("a Kafka assertion needs both topic and op")
	}
	if a.Port != nil && a.Topic != "" {
		return q, fmt.Errorf("give a port or a topic, not both")
	}
	return q, nil
}

// Failure is an assertion that does not hold, with the explanations that break it.
type Failure struct {
	// Want is Allowed or Denied.
	Want         string        `json:"want"`
	Assertion    Assertion     `json:"assertion"`
	Explanations []Explanation `json:"explanations,omitempty"`
	// Error says why the assertion could not be evaluated.
	Error string `json:"error,omitempty"`
}

// Check evaluates every assertion and returns those that fail.
func (r *Result) Check(e *Expectations) []Failure {
	out := []Failure{}
	for _, c := range []struct {
		want string
		list []Assertion
	}{{Allowed, e.Expect.Allow}, {Denied, e.Expect.Deny}} {
		for _, a := range c.list {
			f := Failure{Want: c.want, Assertion: a}
			q, err := a.query()
			if err == nil {
				f.Explanations, err = r.Explain(q)
			}
			if err != nil {
				f.Error = err.Error()
				out = append(out, f)
				continue
			}
			for _, ex := range f.Explanations {
				if ex.Verdict != c.want {
					out = append(out, f)
					break
				}
			}
		}
	}
	return out
}
