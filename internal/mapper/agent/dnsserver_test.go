package agent

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// testDNS answers every A query for <anything>.test with a CNAME to target.test and
// target's addresses, over UDP and TCP. Over TCP, a name containing "split" is answered
// in two segments, cut inside the response's first record.
type testDNS struct {
	target     string
	targetIPs  []netip.Addr
	ttlSeconds uint32
}

func (d testDNS) answer(t testing.TB, query []byte) []byte {
	msg, _ := d.answerName(t, query)
	return msg
}

// answerName answers a query and returns the name asked for too.
func (d testDNS) answerName(t testing.TB, query []byte) ([]byte, string) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		t.Errorf("DNS server: reading query: %v", err)
		return nil, ""
	}
	q, err := p.Question()
	if err != nil {
		t.Errorf("DNS server: reading question: %v", err)
		return nil, ""
	}
	var records []dnsRecord
	if q.Name.String() != d.target {
		records = append(records, dnsRecord{owner: q.Name.String(), cname: d.target, ttl: d.ttlSeconds})
	}
	for _, ip := range d.targetIPs {
		records = append(records, dnsRecord{owner: d.target, ip: ip, ttl: d.ttlSeconds})
	}
	msg := dnsResponse(t, q.Name.String(), dnsmessage.RCodeSuccess, records...)
	binary.BigEndian.PutUint16(msg, hdr.ID)
	return msg, q.Name.String()
}

func (d testDNS) serveUDP(t testing.TB, pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if msg := d.answer(t, buf[:n]); msg != nil {
			_, _ = pc.WriteTo(msg, from)
		}
	}
}

func (d testDNS) serveTCP(t testing.TB, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var size [2]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			query := make([]byte, binary.BigEndian.Uint16(size[:]))
			if _, err := io.ReadFull(c, query); err != nil {
				return
			}
			msg, name := d.answerName(t, query)
			if msg == nil {
				return
			}
			framed := tcpDNS(msg)
			if strings.Contains(name, "split") {
				// Writes are sent at once (TCP_NODELAY), so each is a segment of its own.
				_, _ = c.Write(framed[:30])
				time.Sleep(50 * time.Millisecond)
				framed = framed[30:]
			}
			_, _ = c.Write(framed)
		}()
	}
}

// dnsQuery is an A query for name.
func dnsQuery(t testing.TB, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// exchange sends a query over an open connection (UDP, or TCP with length framing) and
// checks an answer comes back.
func exchange(t testing.TB, c net.Conn, name string) {
	t.Helper()
	query := dnsQuery(t, name)
	tcp := strings.HasPrefix(c.LocalAddr().Network(), "tcp")
	if tcp {
		query = tcpDNS(query)
	}
	if _, err := c.Write(query); err != nil {
		t.Fatalf("sending query for %s: %v", name, err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if tcp && err == nil && n >= 2 {
		// The whole framed response, however many segments it came in.
		want := 2 + int(binary.BigEndian.Uint16(buf))
		if want <= len(buf) && n < want {
			var more int
			more, err = io.ReadFull(c, buf[n:want])
			n += more
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading answer for %s: %v", name, err)
	}
	if n < 12 {
		t.Fatalf("answer for %s: %d bytes", name, n)
	}
}
