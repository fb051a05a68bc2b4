package provider_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/tests/pgtest"
)

// connect returns a provider for url.
func connect(t *testing.T, url string) *provider.Provider {
	t.Helper()
	cfg, err := provider.ParseConfig(url)
	require.NoError(t, err)
	return newProvider(t, cfg)
}

// serverPort returns the port of the server p is connected to.
func serverPort(t *testing.T, p *provider.Provider) int {
	t.Helper()
	var port int
	require.NoError(t, p.Pool().QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port))
	return port
}

// TestSeveralHosts starts two private servers, the first read-only, and connects
// through host lists as pgx reads them.
func TestSeveralHosts(t *testing.T) {
	readOnly := pgtest.LocalServer(t, pgserver.WithSetting("default_transaction_read_only", "on"))
	writable := pgtest.LocalServer(t)
	down, err := pgserver.FreePort()
	require.NoError(t, err)

	t.Run("the first host is down: New connects to the second", func(t *testing.T) {
		p := connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable",
			down, writable.Port()))
		assert.Equal(t, writable.Port(), serverPort(t, p))
		assert.Equal(t, fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", down, writable.Port()), p.Config().Host)
	})

	t.Run("keyword/value form with a port list", func(t *testing.T) {
		p := connect(t, fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable",
			down, writable.Port()))
		assert.Equal(t, writable.Port(), serverPort(t, p))
	})

	t.Run("any server: the first, read-only, is taken", func(t *testing.T) {
		p := connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable",
			readOnly.Port(), writable.Port()))
		assert.Equal(t, readOnly.Port(), serverPort(t, p))
	})

	t.Run("target_session_attrs=read-write skips the read-only server", func(t *testing.T) {
		p := connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
			readOnly.Port(), writable.Port()))
		assert.Equal(t, writable.Port(), serverPort(t, p))
		_, err := p.Pool().Exec(context.Background(), "CREATE TEMP TABLE written (x int)")
		assert.NoError(t, err, "the session accepts writes")
	})

	t.Run("struct form", func(t *testing.T) {
		cfg := provider.DefaultConfig()
		cfg.Host = fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", readOnly.Port(), writable.Port())
		cfg.SSLMode = provider.SSLModeDisable
		cfg.ConnParams = map[string]string{"target_session_attrs": "read-write", "keepalives_idle": "30"}
		p := newProvider(t, cfg)
		assert.Equal(t, writable.Port(), serverPort(t, p))
	})

	t.Run("a refused login says so, once", func(t *testing.T) { testFailedLogin(t, writable) })
	t.Run("passfile and service", func(t *testing.T) { testPassfileAndService(t, writable) })

	t.Run("no server qualifies: the error names every host", func(t *testing.T) {
		cfg, err := provider.ParseConfig(fmt.Sprintf(
			"postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
			readOnly.Port(), down))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = provider.New(ctx, cfg, provider.WithBackoff(fastBackOff))
		var ce *pool.ConnectError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", readOnly.Port(), down), ce.Host)
	})
}

func TestNewGivesUpByItselfWithoutADeadline(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	cfg := provider.DefaultConfig()
	cfg.Host, cfg.Port, cfg.SSLMode = "127.0.0.1", port, provider.SSLModeDisable
	cfg.ConnectRetryTimeout = time.Second
	start := time.Now()
	_, err = provider.New(context.Background(), cfg, provider.WithBackoff(fastBackOff))
	elapsed := time.Since(start)
	var ce *pool.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, time.Second, ce.GaveUpAfter)
	assert.Contains(t, err.Error(), "gave up after 1s, the connect retry timeout")
	assert.Contains(t, err.Error(), "check that the server is running")
	assert.Less(t, elapsed, 15*time.Second, "bounded by ConnectRetryTimeout")
	t.Logf("New gave up after %s (bound 1s)", elapsed)

	// The default wiring is bounded too.
	assert.Equal(t, time.Minute, provider.DefaultConfig().ConnectRetryTimeout)
}

// testFailedLogin makes srv ask for passwords over TCP, then logs in with a wrong one.
func testFailedLogin(t *testing.T, srv *pgserver.Server) {
	ctx := context.Background()
	admin := connect(t, srv.URL)
	for _, stmt := range []string{
		`CREATE ROLE login_test LOGIN PASSWORD 'right-password'`,
	} {
		_, err := admin.Pool().Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	conn, err := admin.Pool().Acquire(ctx)
	require.NoError(t, err)
	var hbaFile string
	require.NoError(t, conn.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile))
	conn.Release()
	_, err = admin.Pool().Exec(ctx, `CREATE TABLE hba (line text);
		INSERT INTO hba VALUES ('local all all trust'), ('host all postgres 127.0.0.1/32 trust'),
			('host all all 127.0.0.1/32 scram-sha-256');
		COPY hba TO `+quoteLiteral(hbaFile)+`; SELECT pg_reload_conf()`)
	require.NoError(t, err)

	cfg := provider.DefaultConfig()
	cfg.Host, cfg.Port, cfg.SSLMode = srv.Host(), srv.Port(), provider.SSLModeDisable
	cfg.User, cfg.Database, cfg.Password = "login_test", "postgres", "wrong-password"
	logger, logs := newLogger()
	var ce *pool.ConnectError
	require.Eventually(t, func() bool { // until the server has reloaded pg_hba.conf
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := provider.New(nctx, cfg, provider.WithLogger(logger))
		if err == nil {
			p.Close()
			return false
		}
		return errors.As(err, &ce)
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, 1, ce.Attempts, "a refused login is not retried")
	msg := ce.Error()
	assert.Contains(t, msg, "the server rejected the login")
	assert.NotContains(t, msg, "check that the server is running")
	assert.Equal(t, 1, strings.Count(msg, "password authentication failed"), "the cause is printed once: %s", msg)
	assert.NotContains(t, msg, "wrong-password")
	assert.NotContains(t, logs.String(), "level=ERROR", "the error is returned, not logged")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
