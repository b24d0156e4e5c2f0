package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// readTimeout bounds each blocking read so a capture notices its context ending.
const readTimeout = 200 * time.Millisecond

// Capture is an AF_PACKET socket that receives, from every interface of its network
// namespace, the packets the Filter accepts, starting at their IP header.
type Capture struct {
	fd int
}

// OpenCapture opens a capture in the calling thread's network namespace. It needs
// CAP_NET_RAW. The filter is attached before the socket is bound, so no unfiltered
// packet is ever queued.
func OpenCapture() (*Capture, error) {
	filter, err := Filter()
	if err != nil {
		return nil, err
	}
	// Protocol 0 receives nothing until bind.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening an AF_PACKET socket: %w", err)
	}
	c := &Capture{fd: fd}
	// bpf.RawInstruction and unix.SockFilter are both the kernel's struct sock_filter.
	insns := make([]unix.SockFilter, len(filter))
	for i, ins := range filter {
		insns[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		c.Close()
		return nil, fmt.Errorf("attaching the capture filter: %w", err)
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting the capture read timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		c.Close()
		return nil, fmt.Errorf("binding the capture to all interfaces: %w", err)
	}
	return c, nil
}

// Run reads packets until ctx ends, calling handle with each one. The slice is reused
// for the next packet, so handle must copy what it keeps.
func (c *Capture) Run(ctx context.Context, handle func(pkt []byte, at time.Time)) error {
	buf := make([]byte, snapLen)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("reading captured packets: %w", err)
		}
		handle(buf[:n], time.Now())
	}
	return nil
}

// Close releases the socket.
func (c *Capture) Close() error {
	if err := unix.Close(c.fd); err != nil {
		return fmt.Errorf("closing the capture socket: %w", err)
	}
	return nil
}

// htons gives a protocol number in the byte order AF_PACKET expects.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
