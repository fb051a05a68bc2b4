package events_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// helperEnv, when set, makes the test binary a helper process (see
// TestHelperProcess): it then uses the database named in helperURLEnv instead of
// creating its own.
const (
	helperEnv    = "UNO_EVENTS_HELPER"
	helperURLEnv = "UNO_EVENTS_HELPER_URL"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	pgtest.Main(m)
}

var migrateOnce sync.Once

// env is what most tests need: a pool on the package database with the tables
// migrated and emptied, a transaction manager and an outbox.
type env struct {
	pool   *pgxpool.Pool
	tm     *txmanager.Manager
	outbox *events.Outbox
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	t.Helper()
	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 12
	pool := pgtest.NewPool(t, cfg)
	migrate(t, pool)
	_, err := pool.Exec(context.Background(),
		`TRUNCATE uno_outbox, uno_dead_letters, uno_inbox, uno_outbox_leases, uno_outbox_relays, test_counters`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	return &env{pool: pool, tm: tm, outbox: events.NewOutbox(events.OutboxConfig{})}
}

func migrate(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	var err error
	migrateOnce.Do(func() {
		err = schema.MigratePool(context.Background(), pool)
		if err == nil {
			_, err = pool.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS test_counters (
	name text PRIMARY KEY, n int8 NOT NULL DEFAULT 0)`)
		}
	})
	require.NoError(t, err)
}

// runRelay runs relay until the test ends (or stop is called), waits until it is
// running, and checks at the end that Run returned nil.
func runRelay(t *testing.T, relay *events.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	select {
	case <-relay.Running():
	case err := <-done:
		t.Fatalf("relay.Run returned before it was running: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the relay was not running after 30s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Error("relay did not stop within 30s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recorder is a message.Publisher that records what it is given.
type recorder struct {
	mu       sync.Mutex
	msgs     []*message.Message
	byTopic  map[string]int
	notify   chan struct{}
	failWith func(msg *message.Message) error
}

func newRecorder() *recorder {
	return &recorder{byTopic: map[string]int{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failWith != nil {
		for _, m := range msgs {
			if err := r.failWith(m); err != nil {
				return err
			}
		}
	}
	for _, m := range msgs {
		r.msgs = append(r.msgs, m)
		r.byTopic[topic]++
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) all() []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*message.Message(nil), r.msgs...)
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

// outboxRows returns the number of rows (envelopes) of the outbox.
func outboxRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM uno_outbox`).Scan(&n))
	return n
}

// dbURL is the package database's connection string.
func dbURL(t *testing.T) string { return pgtest.ConnString(t) }

// quietLogger logs warnings and errors to the test's output.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: testLogLevel}))
}

var testLogLevel = func() slog.Level {
	if os.Getenv("UNO_EVENTS_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}()
