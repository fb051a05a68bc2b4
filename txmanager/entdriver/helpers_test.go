package entdriver_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
)

// migrate creates the bank tables in the package's database (idempotent).
func migrate(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.NoError(t, bank.MigratePool(context.Background(), pool))
}

// env is what most tests need: a manager and an ent client on entdriver, and an
// observer pool for looking at the database from outside the transactions under test.
type env struct {
	pool     *pgxpool.Pool
	tm       *txmanager.Manager
	drv      *entdriver.Driver
	client   *ent.Client
	observer *pgxpool.Pool
}

func newEnv(t *testing.T, cfg *pgxpool.Config) env {
	t.Helper()
	if cfg == nil {
		cfg = pgtest.PoolConfig(t)
	}
	pool := pgtest.NewPool(t, cfg)
	observer := pgtest.Pool(t)
	migrate(t, observer)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	drv := entdriver.New(tm)
	return env{
		pool:     pool,
		tm:       tm,
		drv:      drv,
		client:   ent.NewClient(ent.Driver(drv)),
		observer: observer,
	}
}

// count returns the result of a count(*) query run on the observer pool, that is,
// what other sessions see.
func (e env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.observer.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// tripCounter counts round trips on the connections it dials: a round trip is a
// turnaround from the client writing to the client reading.
type tripCounter struct {
	mu    sync.Mutex
	wrote bool
	trips int
}

func (c *tripCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: c}, nil
}

// reset zeroes the count.
func (c *tripCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips, c.wrote = 0, false
}

// count returns the round trips since the last reset.
func (c *tripCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trips
}

type countingConn struct {
	net.Conn
	c *tripCounter
}

func (cc *countingConn) Write(b []byte) (int, error) {
	cc.c.mu.Lock()
	cc.c.wrote = true
	cc.c.mu.Unlock()
	return cc.Conn.Write(b)
}

func (cc *countingConn) Read(b []byte) (int, error) {
	cc.c.mu.Lock()
	if cc.c.wrote {
		cc.c.trips++
		cc.c.wrote = false
	}
	cc.c.mu.Unlock()
	return cc.Conn.Read(b)
}

// countingConfig returns a one-connection pool configuration whose connection counts
// its round trips, with no liveness pings to blur the count.
func countingConfig(t *testing.T) (*pgxpool.Config, *tripCounter) {
	t.Helper()
	counter := &tripCounter{}
	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 1
	cfg.MinConns = 0
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	cfg.ConnConfig.DialFunc = counter.dial
	return cfg, counter
}

// statement is one statement ent sent through the driver.
type statement struct {
	query string
	args  []any
	rows  bool // sent through Query
}

// recorder is a dialect.Driver that records the statements ent sends, then passes
// them on to the driver it wraps, transactions included.
type recorder struct {
	dialect.Driver
	mu    sync.Mutex
	stmts []statement
	txs   int
}

func (r *recorder) add(query string, args any, rows bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	argv, _ := args.([]any)
	r.stmts = append(r.stmts, statement{query: query, args: append([]any(nil), argv...), rows: rows})
}

func (r *recorder) take() ([]statement, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stmts, txs := r.stmts, r.txs
	r.stmts, r.txs = nil, 0
	return stmts, txs
}

func (r *recorder) Exec(ctx context.Context, query string, args, v any) error {
	r.add(query, args, false)
	return r.Driver.Exec(ctx, query, args, v)
}

func (r *recorder) Query(ctx context.Context, query string, args, v any) error {
	r.add(query, args, true)
	return r.Driver.Query(ctx, query, args, v)
}

func (r *recorder) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := r.Driver.Tx(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.txs++
	r.mu.Unlock()
	return &recorderTx{Tx: tx, r: r}, nil
}

type recorderTx struct {
	dialect.Tx
	r *recorder
}

func (t *recorderTx) Exec(ctx context.Context, query string, args, v any) error {
	t.r.add(query, args, false)
	return t.Tx.Exec(ctx, query, args, v)
}

func (t *recorderTx) Query(ctx context.Context, query string, args, v any) error {
	t.r.add(query, args, true)
	return t.Tx.Query(ctx, query, args, v)
}

// replay runs statements by hand through q, reading every row.
func replay(ctx context.Context, q txmanager.Querier, stmts []statement) error {
	for _, s := range stmts {
		if !s.rows {
			if _, err := q.Exec(ctx, s.query, s.args...); err != nil {
				return err
			}
			continue
		}
		rows, err := q.Query(ctx, s.query, s.args...)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// replayWithBeginFunc runs statements the way a hand-written pgx program would:
// pgx.BeginFunc on a pooled connection.
func replayWithBeginFunc(ctx context.Context, pool *pgxpool.Pool, stmts []statement) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return replay(ctx, tx, stmts) })
}
