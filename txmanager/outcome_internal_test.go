package txmanager

import (
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
