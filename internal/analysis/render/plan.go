package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/intentguard/intentguard/internal/analysis"
)

// PlanText writes a change for a terminal: per point the accesses removed (first) and
// added, then the objects the operator would write.
func PlanText(w io.Writer, c analysis.Change) {
	if c.Empty() {
		fmt.Fprintln(w, "No change: the same accesses, and nothing for the operator to write.")
		return
	}
	for _, p := range points {
		removed, added := ofPoint(c.Removed, p.point), ofPoint(c.Added, p.point)
		if len(removed)+len(added) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s accesses: %d removed, %d added\n", p.title, len(removed), len(added))
		for _, t := range removed {
			fmt.Fprintf(w, "  - %s    (%s)\n", t, grant(t))
		}
		for _, t := range added {
			fmt.Fprintf(w, "  + %s    (%s)\n", t, grant(t))
		}
	}
	if len(c.Policies)+len(c.ACLs)+len(c.AuthorizationPolicies) == 0 {
		return
	}
	fmt.Fprintln(w, "The operator would:")
	for _, o := range c.Policies {
		fmt.Fprintf(w, "  %s NetworkPolicy %s/%s\n", o.Action, o.Namespace, o.Name)
	}
	for _, o := range c.AuthorizationPolicies {
		fmt.Fprintf(w, "  %s AuthorizationPolicy %s/%s\n", o.Action, o.Namespace, o.Name)
	}
	for _, a := range c.ACLs {
		fmt.Fprintf(w, "  %s on KafkaServerConfig %s: %s\n", a.Action, a.Config, a.ACL)
	}
}

// PlanMarkdown writes a change as a pull-request comment.
func PlanMarkdown(w io.Writer, c analysis.Change, failures []analysis.Failure) {
	fmt.Fprintln(w, "### intentguard plan")
	fmt.Fprintln(w)
	if c.Empty() {
		fmt.Fprintln(w, "No change: the same accesses, and nothing for the operator to write.")
	} else {
		fmt.Fprintf(w, "**%s removed, %d added.**\n", accesses(len(c.Removed)), len(c.Added))
	}
	for _, s := range []struct {
		title  string
		tuples []analysis.Tuple
	}{{"Removed accesses", c.Removed}, {"Added accesses", c.Added}} {
		if len(s.tuples) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n#### %s\n\n", s.title)
		fmt.Fprintln(w, "| point | from | to | port or topic | granted by |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, t := range s.tuples {
			fmt.Fprintf(w, "| %s | `%s` | `%s` | `%s` | %s |\n", t.Point, t.From, t.To, t.What(), cell(grant(t)))
		}
	}
	if len(c.Policies)+len(c.ACLs)+len(c.AuthorizationPolicies) > 0 {
		fmt.Fprintf(w, "\n#### Objects the operator would write\n\n")
		fmt.Fprintln(w, "| action | object |")
		fmt.Fprintln(w, "|---|---|")
		for _, o := range c.Policies {
			fmt.Fprintf(w, "| %s | NetworkPolicy `%s/%s` |\n", o.Action, o.Namespace, o.Name)
		}
		for _, o := range c.AuthorizationPolicies {
			fmt.Fprintf(w, "| %s | AuthorizationPolicy `%s/%s` |\n", o.Action, o.Namespace, o.Name)
		}
		for _, a := range c.ACLs {
			fmt.Fprintf(w, "| %s | ACL on `%s`: `%s` |\n", a.Action, a.Config, cell(a.ACL.String()))
		}
	}
	if len(failures) > 0 {
		fmt.Fprintf(w, "\n#### Failed assertions\n\n```\n")
		Failures(w, failures)
		fmt.Fprintln(w, "```")
	}
}

// cell escapes what would break a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// accesses counts accesses in words.
func accesses(n int) string {
	if n == 1 {
		return "1 access"
	}
	return fmt.Sprintf("%d accesses", n)
}
