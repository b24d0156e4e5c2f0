package agent

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// snapLen is how much of an accepted packet the kernel copies: enough for any DNS
// response over UDP, which the agent needs whole.
const snapLen = 65535

// Filter is the classic BPF program the capture socket runs in the kernel, so only TCP
// SYNs and DNS responses (UDP or TCP from port 53) reach the agent. Packets start at the
// IP header (AF_PACKET SOCK_DGRAM); IPv6 extension headers and IPv4 non-first fragments
// are dropped, as the parser would not read them either.
func Filter() ([]bpf.RawInstruction, error) {
	const (
		accept = snapLen
		drop   = 0
	)
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1},
		/* 1 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
		/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x40, SkipFalse: 12}, // IPv4? else 15
		// IPv4: first fragment or whole packet only.
		/* 3 */ bpf.LoadAbsolute{Off: 6, Size: 2},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 22}, // -> drop (27)
		/* 5 */ bpf.LoadMemShift{Off: 0}, // X = IPv4 header length
		/* 6 */ bpf.LoadAbsolute{Off: 9, Size: 1},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoTCP, SkipFalse: 4}, // -> 12
		/* 8 */ bpf.LoadIndirect{Off: 13, Size: 1},
		/* 9 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipTrue: 15}, // SYN -> accept (26)
		/* 11 */ bpf.Jump{Skip: 1}, // -> 13: source port 53?
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoUDP, SkipFalse: 14}, // -> drop (27)
		/* 13 */ bpf.LoadIndirect{Off: 0, Size: 2},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: dnsPort, SkipTrue: 11, SkipFalse: 12}, // accept / drop
		// IPv6: transport header right after the fixed 40-byte header.
		/* 15 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x60, SkipFalse: 11}, // -> drop (27)
		/* 16 */ bpf.LoadConstant{Dst: bpf.RegX, Val: 40},
		/* 17 */ bpf.LoadAbsolute{Off: 6, Size: 1},
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoTCP, SkipFalse: 4}, // -> 23
		/* 19 */ bpf.LoadIndirect{Off: 13, Size: 1},
		/* 20 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		/* 21 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipTrue: 4}, // SYN -> accept (26)
		/* 22 */ bpf.Jump{Skip: 1}, // -> 24
		/* 23 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoUDP, SkipFalse: 3}, // -> drop (27)
		/* 24 */ bpf.LoadIndirect{Off: 0, Size: 2},
		/* 25 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: dnsPort, SkipFalse: 1}, // -> drop (27)
		/* 26 */ bpf.RetConstant{Val: accept},
		/* 27 */ bpf.RetConstant{Val: drop},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling the capture filter: %w", err)
	}
	return raw, nil
}
