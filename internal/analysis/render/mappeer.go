package render

import (
	"fmt"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// Peer renders a peer as a graph node and in tables: ns/name[Kind] for a workload (as
// intentguard graph draws them), ns/name[Service], node:name and external:name.
func Peer(p edges.Peer) string {
	switch p.Kind {
	case edges.PeerWorkload:
		if p.WorkloadKind == "" {
			return p.Namespace + "/" + p.Name
		}
		return p.Namespace + "/" + p.Name + "[" + p.WorkloadKind + "]"
	case edges.PeerService:
		return p.Namespace + "/" + p.Name + "[Service]"
	default:
		return string(p.Kind) + ":" + p.Name
	}
}

// Age renders how long before now t was: "just now", "45 s ago", "2 min ago", "3 h ago",
// "5 d ago"; "in 10 s" for a time ahead of now (clocks disagree).
func Age(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + short(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return short(d) + " ago"
}

func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
}
