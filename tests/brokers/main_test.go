package brokers

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is what a test needs: a pool on the package database with uno's tables migrated
// and emptied, a transaction manager and an outbox.
type env struct {
	pool   *pgxpool.Pool
	tm     *txmanager.Manager
	outbox *events.Outbox
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, schema.MigratePool(ctx, pool))
	_, err := pool.Exec(ctx, `TRUNCATE uno_outbox, uno_dead_letters, uno_inbox, uno_outbox_leases, uno_outbox_relays`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	return &env{pool: pool, tm: tm, outbox: events.NewOutbox(events.OutboxConfig{})}
}

// startRouter runs a router with the handlers setup adds; it is closed at cleanup
// (after the relay the test starts later, which stops first).
func startRouter(t *testing.T, setup func(r *message.Router)) {
	t.Helper()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	setup(router)
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, router.Close())
		require.NoError(t, <-done)
	})
	select {
	case <-router.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("the router did not start")
	}
}

// runRelay runs relay until the test ends and checks that Run returned nil.
func runRelay(t *testing.T, relay *events.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("relay did not stop within 30s of its context ending")
		}
	})
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// outboxCount returns the number of events in the outbox not yet delivered.
func outboxCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	lag, err := events.ReadLag(context.Background(), pool)
	require.NoError(t, err)
	return int(lag.Pending)
}

// quietLogger logs warnings and errors to the test's output.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
