// Package roundtrip counts the round trips of pgx connections, for tests that hold uno
// to the fewest round trips a transaction needs.
//
// A round trip is counted each time the client writes after it has received data from
// the server (or writes first on a connection): a turn of the conversation, however many
// Write calls the client splits its message into and however many Read calls the
// server's answer takes. Waiting is what a round trip costs, and a client must wait for
// an answer before it can write something that depends on it.
package roundtrip

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Counter counts the round trips of the connections of the pools it was installed in.
type Counter struct{ n atomic.Int64 }

// Load returns the round trips counted so far.
func (c *Counter) Load() int64 { return c.n.Load() }

// Install makes cfg's pool a single connection, never pinged before use, whose round
// trips c counts.
func (c *Counter) Install(cfg *pgxpool.Config) {
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: conn, c: c}
		cc.received.Store(true)
		return cc, nil
	}
}

type countingConn struct {
	net.Conn
	c        *Counter
	received atomic.Bool // data was read since the last write
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.received.Swap(false) {
		c.c.n.Add(1)
	}
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.received.Store(true)
	}
	return n, err
}
