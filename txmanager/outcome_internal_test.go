package txmanager

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestSameServerPinsTheHostTheTransactionRanOn(t *testing.T) {
	parse := func(s string) *pgx.ConnConfig {
		cc, err := pgx.ParseConfig(s)
		require.NoError(t, err)
		return cc
	}
	at := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }

	one := parse("postgres://u@127.0.0.1:5001/db?sslmode=disable")
	got, err := sameServer(one, at(5001))
	require.NoError(t, err)
	assert.Same(t, one, got, "one host: asked as configured")

	two := parse("postgres://u@127.0.0.1:5001,127.0.0.1:5002/db?sslmode=disable&target_session_attrs=read-write")
	got, err = sameServer(two, at(5002))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", got.Host)
	assert.Equal(t, uint16(5002), got.Port, "the host the transaction ran on, not the first")
	assert.Empty(t, got.Fallbacks, "never another host: it may reuse the transaction's id")
	assert.Len(t, two.Fallbacks, 1, "the pool's configuration is left as it was")

	prefer := parse("postgres://u@localhost:5003/db") // sslmode=prefer: TLS, then plain
	got, err = sameServer(prefer, at(5003))
	require.NoError(t, err)
	assert.NotNil(t, got.TLSConfig, "TLS first, as configured")
	require.Len(t, got.Fallbacks, 1)
	assert.Nil(t, got.Fallbacks[0].TLSConfig, "then plain")

	_, err = sameServer(two, &net.UnixAddr{Name: "/tmp/.s.PGSQL.5001", Net: "unix"})
	assert.ErrorContains(t, err, "several hosts")
}

// After a restart a server may hand an id that never reached its log to another
// transaction, so only "aborted" is taken from a server that started after the
// transaction ran; "committed" there may be another transaction's.
func TestStatusFromARestartedServerIsTakenOnlyWhenAborted(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.Conn(t)
	var era time.Time
	require.NoError(t, conn.QueryRow(ctx, "select pg_postmaster_start_time()").Scan(&era))
	xidOf := func(commit bool) int64 {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		var xid int64
		require.NoError(t, tx.QueryRow(ctx, "select txid_current()").Scan(&xid))
		if commit {
			require.NoError(t, tx.Commit(ctx))
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		return xid
	}
	committed, aborted := xidOf(true), xidOf(false)
	m := &Manager{resolveTimeout: 10 * time.Second}
	cc := conn.Config()
	earlier := era.Add(-time.Hour) // the era of a server since restarted

	for _, c := range []struct {
		name string
		xid  int64
		era  time.Time
		want string
	}{
		{"committed, same server era", committed, era, "committed"},
		{"aborted, same server era", aborted, era, "aborted"},
		{"committed, unknown era", committed, time.Time{}, "committed"},
		{"committed, server restarted since", committed, earlier, statusReused},
		{"aborted, server restarted since", aborted, earlier, "aborted"},
	} {
		got, err := m.askStatus(ctx, cc, c.xid, c.era, 0)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, got, c.name)
	}
	_, err := m.xactStatus(ctx, cc, committed, earlier, 0, nil)
	require.ErrorContains(t, err, "restarted", "a possibly reused id is no answer: the outcome stays unknown")
}
