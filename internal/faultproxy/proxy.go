package faultproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// Side is the end of a connection a message comes from.
type Side uint8

const (
	// Client messages travel from the client (pgx) to the server.
	Client Side = iota
	// Server messages travel from the server to the client.
	Server
)

// Message is one protocol message seen by the proxy.
type Message struct {
	From Side
	// Type is the message's type byte ('Q', 'P', 'B', 'E', 'S', 'C', 'D', 'Z', ...); 0
	// for the untyped messages of the start-up phase.
	Type byte
	// Body is the message's payload, without type byte and length.
	Body []byte
	// SQL is the statement a client message runs or prepares: the text of a simple
	// Query ('Q') or Parse ('P'), and for a Bind ('B') the text of the statement it
	// binds (the proxy remembers what each connection prepared). Empty otherwise.
	SQL string
}

// Tag returns the command tag of a server's CommandComplete ('C'), such as "COMMIT" or
// "INSERT 0 1"; empty for other messages.
func (m *Message) Tag() string {
	if m.From != Server || m.Type != 'C' {
		return ""
	}
	return cstring(m.Body)
}

// Point is where a connection is cut: on the first message for which Match reports
// true, before the message is passed on, or right after it when After is set.
type Point struct {
	Match func(m *Message) bool
	After bool
}

// ClientRuns matches the client message that makes the server run (or prepare, for a
// Parse) a statement whose text starts with prefix, ignoring case and leading blanks:
// a simple Query, a Parse, or a Bind of a statement prepared earlier.
func ClientRuns(prefix string) func(m *Message) bool {
	prefix = strings.ToLower(prefix)
	return func(m *Message) bool {
		if m.From != Client || (m.Type != 'Q' && m.Type != 'B') {
			return false
		}
		return strings.HasPrefix(strings.ToLower(strings.TrimSpace(m.SQL)), prefix)
	}
}

// ServerCompletes matches the server's CommandComplete whose tag starts with prefix
// ("COMMIT", "INSERT"): the statement ran on the server, and cutting before the message
// is passed on hides that from the client.
func ServerCompletes(prefix string) func(m *Message) bool {
	return func(m *Message) bool { return strings.HasPrefix(m.Tag(), prefix) }
}

// ServerSendsRow matches the nth DataRow (from 1) a server sends on a connection after
// the point was armed.
func ServerSendsRow(n int) func(m *Message) bool {
	var seen atomic.Int64
	return func(m *Message) bool {
		return m.From == Server && m.Type == 'D' && seen.Add(1) == int64(n)
	}
}

// Proxy accepts connections on a local port and relays them to a PostgreSQL server.
// It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	points []*armed
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted atomic.Int64
	cuts     atomic.Int64
	refusing atomic.Bool
}

type armed struct {
	p    Point
	done chan struct{}
	once sync.Once
}

// Start listens on 127.0.0.1 (a free port) and relays each connection to target
// (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients connect to (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host returns the host clients connect to.
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the port clients connect to.
func (p *Proxy) Port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

// Accepted returns how many connections the proxy accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cuts returns how many connections the proxy cut (by a Point or by CutAll).
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Arm arms a cut at pt: the first message of any connection that matches it cuts that
// connection (both sides), once. The returned channel is closed when the cut happened.
func (p *Proxy) Arm(pt Point) <-chan struct{} {
	a := &armed{p: pt, done: make(chan struct{})}
	p.mu.Lock()
	p.points = append(p.points, a)
	p.mu.Unlock()
	return a.done
}

// Disarm removes every armed point that has not fired.
func (p *Proxy) Disarm() {
	p.mu.Lock()
	p.points = nil
	p.mu.Unlock()
}

// CutAll cuts every open connection now, as a network failure would, and returns how
// many it cut.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.cut()
	}
	return len(ls)
}

// Refuse makes the proxy close each new connection as soon as it accepts it (refuse
// true), as a server that went away would, or relay them again (false). Connections
// already open are left alone. It may be called from a Point's Match.
func (p *Proxy) Refuse(refuse bool) { p.refusing.Store(refuse) }

// Close stops accepting, cuts every connection and waits for the relays to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.refusing.Load() {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &link{p: p, client: c, server: s, stmts: map[string]string{}}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go l.relayClient()
	}
}

// fire returns the armed point m triggers, if any, and disarms it.
func (p *Proxy) fire(m *Message) *armed {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range p.points {
		if a.p.Match(m) {
			p.points = append(p.points[:i:i], p.points[i+1:]...)
			return a
		}
	}
	return nil
}

// link is one proxied connection.
type link struct {
	p              *Proxy
	client, server net.Conn
	cutOnce        sync.Once
	// stmts maps the names of statements the client prepared to their text; only the
	// client relay uses it.
	stmts map[string]string
}

func (l *link) cut() {
	l.cutOnce.Do(func() {
		l.p.cuts.Add(1)
		_ = l.client.Close()
		_ = l.server.Close()
		l.p.mu.Lock()
		delete(l.p.conns, l)
		l.p.mu.Unlock()
	})
}

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	maxMessage        = 1 << 30
)

var errTooLarge = errors.New("faultproxy: message too large")

// relayClient relays the client's messages: the untyped start-up messages, then typed
// ones.
func (l *link) relayClient() {
	defer l.p.wg.Done()
	defer l.cut()
	// Untyped start-up messages: SSLRequest/GSSENCRequest (answered by one byte), then
	// the StartupMessage or a CancelRequest.
	for {
		body, raw, err := readUntyped(l.client)
		if err != nil {
			return
		}
		code := uint32(0)
		if len(body) >= 4 {
			code = binary.BigEndian.Uint32(body)
		}
		if code == sslRequestCode || code == gssEncRequestCode {
			if _, err := l.server.Write(raw); err != nil {
				return
			}
			// The server answers with one untyped byte; after 'S' or 'G' the stream is
			// encrypted and is piped as it is.
			var b [1]byte
			if _, err := io.ReadFull(l.server, b[:]); err != nil {
				return
			}
			if _, err := l.client.Write(b[:]); err != nil {
				return
			}
			if b[0] != 'N' {
				l.pipe()
				return
			}
			continue
		}
		if _, err := l.server.Write(raw); err != nil {
			return
		}
		if code == cancelRequestCode {
			l.pipe()
			return
		}
		break
	}
	// The server relay starts once the start-up messages are through: until then this
	// goroutine reads the server's one-byte answers itself.
	l.p.wg.Add(1)
	go l.relayServer()
	l.relayTyped(l.client, l.server, Client)
}

// pipe copies both directions as they are until either side closes.
func (l *link) pipe() {
	l.p.wg.Add(1)
	go func() {
		defer l.p.wg.Done()
		defer l.cut()
		_, _ = io.Copy(l.client, l.server)
	}()
	_, _ = io.Copy(l.server, l.client)
}

// relayServer relays the server's typed messages.
func (l *link) relayServer() {
	defer l.p.wg.Done()
	defer l.cut()
	l.relayTyped(l.server, l.client, Server)
}

func (l *link) relayTyped(src, dst net.Conn, from Side) {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > maxMessage {
			return
		}
		buf := make([]byte, 5+n)
		copy(buf, hdr[:])
		if _, err := io.ReadFull(src, buf[5:]); err != nil {
			return
		}
		m := Message{From: from, Type: hdr[0], Body: buf[5:]}
		if from == Client {
			m.SQL = l.statementOf(&m)
		}
		a := l.p.fire(&m)
		if a != nil && !a.p.After {
			a.once.Do(func() { close(a.done) }) // before the cut: whoever sees it can rely on it
			l.cut()
			return
		}
		if _, err := dst.Write(buf); err != nil {
			return
		}
		if a != nil {
			a.once.Do(func() { close(a.done) })
			l.cut()
			return
		}
	}
}

// statementOf returns the statement text a client message runs or prepares, and
// remembers what Parse prepared.
func (l *link) statementOf(m *Message) string {
	switch m.Type {
	case 'Q':
		return cstring(m.Body)
	case 'P':
		name, rest := splitCString(m.Body)
		sql := cstring(rest)
		l.stmts[name] = sql
		return sql
	case 'B':
		_, rest := splitCString(m.Body) // portal
		stmt := cstring(rest)
		return l.stmts[stmt]
	case 'C': // Close: forget a statement
		if len(m.Body) > 0 && m.Body[0] == 'S' {
			delete(l.stmts, cstring(m.Body[1:]))
		}
	}
	return ""
}

func readUntyped(r io.Reader) (body, raw []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:])) - 4
	if n < 0 || n > maxMessage {
		return nil, nil, errTooLarge
	}
	raw = make([]byte, 4+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[4:]); err != nil {
		return nil, nil, err
	}
	return raw[4:], raw, nil
}

func cstring(b []byte) string {
	s, _ := splitCString(b)
	return s
}

func splitCString(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}
