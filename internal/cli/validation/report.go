package validation

import (
	"fmt"
	"io"
	"strings"

	"github.com/intentguard/intentguard/internal/cli/output"
)

// Formats are the -o formats of a report.
var Formats = []output.Format{output.JSON, output.JUnit}

// Write writes the report in format f (output.Text, output.JSON or output.JUnit).
func (r Report) Write(w io.Writer, f output.Format) error {
	switch f {
	case output.JSON:
		return output.WriteJSON(w, r)
	case output.JUnit:
		return output.WriteJUnit(w, r.junit())
	case output.Text:
		return r.writeText(w)
	default:
		return fmt.Errorf("validate cannot write %s", f)
	}
}

// name is how a report names the object: Kind namespace/name, or only where it was
// read when it is not an object.
func (o Object) name() string {
	if o.Kind == "" {
		return o.Source.String()
	}
	id := o.Name
	if o.Namespace != "" {
		id = o.Namespace + "/" + o.Name
	}
	return fmt.Sprintf("%s %s", o.Kind, id)
}

// lines are the findings of o, one a line, each naming the field.
func (o Object) lines() []string {
	out := make([]string, len(o.Findings))
	for i, f := range o.Findings {
		msg := f.Message
		if f.Field != "" && !strings.HasPrefix(msg, f.Field) {
			msg = f.Field + ": " + msg
		}
		out[i] = fmt.Sprintf("%s [%s]", msg, f.Check)
	}
	return out
}

func (r Report) writeText(w io.Writer) error {
	var b strings.Builder
	invalid := 0
	for _, o := range r.Objects {
		if o.Valid() {
			continue
		}
		invalid++
		head := o.Source.String()
		if o.Kind != "" {
			head += fmt.Sprintf(": %s (%s)", o.name(), o.APIVersion)
		}
		fmt.Fprintf(&b, "%s:\n", head)
		for _, l := range o.lines() {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	checked := len(r.Objects)
	switch {
	case checked == 0:
		b.WriteString("no ClientIntents, ProtectedService or KafkaServerConfig found")
	case invalid == 0:
		fmt.Fprintf(&b, "%d %s checked, all valid", checked, plural(checked, "object", "objects"))
	default:
		fmt.Fprintf(&b, "%d %s checked, %d invalid", checked, plural(checked, "object", "objects"), invalid)
	}
	if r.Ignored > 0 {
		fmt.Fprintf(&b, " (%d %s of other kinds not checked)", r.Ignored, plural(r.Ignored, "object", "objects"))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (r Report) junit() output.JUnitSuite {
	s := output.JUnitSuite{Name: "intentguard validate"}
	for _, o := range r.Objects {
		c := output.JUnitCase{Name: o.name(), ClassName: o.File}
		if !o.Valid() {
			lines := o.lines()
			c.Failure = &output.JUnitFailure{Message: lines[0], Text: o.Source.String() + "\n" + strings.Join(lines, "\n")}
		}
		s.Cases = append(s.Cases, c)
	}
	return s
}
