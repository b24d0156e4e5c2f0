package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/intentguard/intentguard/internal/analysis/rollout"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// RolloutText writes, per server, the observed callers its protection would block, and
// how many it would admit; now dates the evidence.
func RolloutText(w io.Writer, servers []rollout.Server, now time.Time) {
	if len(servers) == 0 {
		fmt.Fprintln(w, "No server that this plan protects or changes, and none in shadow mode.")
		return
	}
	for _, s := range servers {
		fmt.Fprintf(w, "%s: %s\n", s.Server, standing(s))
		if len(s.Blocked) == 0 {
			fmt.Fprintf(w, "  no observed caller would be blocked; %s\n", stayAllowed(s.Allowed))
			continue
		}
		fmt.Fprintf(w, "  %s:\n", wouldBlock(s))
		for _, c := range s.Blocked {
			fmt.Fprintf(w, "    %s (%s%s)\n", call(c), evidence(c, now), caveat(c))
		}
		fmt.Fprintf(w, "  %s\n", stayAllowed(s.Allowed))
	}
}

// RolloutMarkdown writes the same for a pull-request comment, a table per server.
func RolloutMarkdown(w io.Writer, servers []rollout.Server, now time.Time) {
	fmt.Fprintf(w, "\n#### Observed callers\n")
	if len(servers) == 0 {
		fmt.Fprintln(w, "\nNo server that this plan protects or changes, and none in shadow mode.")
	}
	for _, s := range servers {
		fmt.Fprintf(w, "\n`%s`: %s.", s.Server, standing(s))
		if len(s.Blocked) == 0 {
			fmt.Fprintf(w, " No observed caller would be blocked; %s.\n", stayAllowed(s.Allowed))
			continue
		}
		fmt.Fprintf(w, " %s%s:\n\n", strings.ToUpper(wouldBlock(s)[:1]), wouldBlock(s)[1:])
		fmt.Fprintln(w, "| caller | to | last seen | connections |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, c := range s.Blocked {
			note := ""
			if caveat(c) != "" {
				note = " (" + strings.TrimPrefix(caveat(c), "; ") + ")"
			}
			fmt.Fprintf(w, "| `%s`%s | `%s` %s/%d | %s | %s |\n", Peer(c.Client), cell(note), Peer(c.Called), c.Protocol, c.Port, Age(now, c.LastSeen), thousands(c.Count))
		}
		fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(stayAllowed(s.Allowed)[:1]), stayAllowed(s.Allowed)[1:])
	}
}

// standing says why the server is in the report.
func standing(s rollout.Server) string {
	if s.Enforced {
		return "protected by NetworkPolicy " + s.Policy
	}
	return fmt.Sprintf("not enforced in shadow mode, judged as if ProtectedService %s were applied", s.Assumed)
}

func wouldBlock(s rollout.Server) string {
	if s.Enforced {
		return "with this plan, these observed callers would be blocked"
	}
	return "if you protect it now, these observed callers would be blocked"
}

func stayAllowed(allowed []rollout.Caller) string {
	var count uint64
	for _, c := range allowed {
		count += c.Count
	}
	switch len(allowed) {
	case 0:
		return "no observed caller stays allowed"
	case 1:
		return fmt.Sprintf("1 observed caller stays allowed (%s %s)", thousands(count), plural(count, "connection"))
	}
	return fmt.Sprintf("%d observed callers stay allowed (%s %s)", len(allowed), thousands(count), plural(count, "connection"))
}

// call renders an observed call: client -> server called, port.
func call(c rollout.Caller) string {
	return fmt.Sprintf("%s -> %s %s/%d", Peer(c.Client), Peer(c.Called), c.Protocol, c.Port)
}

func evidence(c rollout.Caller, now time.Time) string {
	s := fmt.Sprintf("last seen %s, %s %s", Age(now, c.LastSeen), thousands(c.Count), plural(c.Count, "connection"))
	if len(c.ClientPods) > 0 {
		s += ", pods " + strings.Join(c.ClientPods, ", ")
	}
	return s
}

// caveat says what qualifies a verdict.
func caveat(c rollout.Caller) string {
	switch {
	case c.Verdict == rollout.Partly:
		return "; some of its pods"
	case c.Verdict == rollout.Undecided:
		return "; undecided: a policy admits addresses, and this caller's is unknown"
	case c.Basis == rollout.Declared:
		return "; no pods in the inputs: judged by its declared calls"
	case c.Client.Kind == edges.PeerNode:
		return "; from a node's host network: the node a pod runs on reaches it all the same"
	}
	return ""
}

// thousands renders n with commas between groups of three digits.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n uint64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
