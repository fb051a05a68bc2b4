package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uno-framework/uno/txmanager"
)

// ErrLastInsertID is returned by the LastInsertId method of results: PostgreSQL has no
// last insert id. Use INSERT ... RETURNING.
var ErrLastInsertID = errors.New("sqldriver: PostgreSQL has no last insert id; use INSERT ... RETURNING")

// Open returns a *sql.DB over tm whose statements run on the transaction their
// context carries, else on tm's pool. Build it once at start-up. Closing it closes
// nothing of tm's pool; the provider that owns the pool closes that.
func Open(tm *txmanager.Manager) *sql.DB {
	return sql.OpenDB(Connector{tm: tm})
}

// Connector is the driver.Connector of [Open], for sql.OpenDB. Its connections hold no
// database connection of their own: each statement borrows the ctx's transaction or a
// pooled connection for as long as it runs (for a query, until its rows are closed).
type Connector struct {
	tm *txmanager.Manager
}

// NewConnector returns the connector [Open] uses.
func NewConnector(tm *txmanager.Manager) Connector { return Connector{tm: tm} }

// Connect returns a routing connection.
func (c Connector) Connect(context.Context) (driver.Conn, error) {
	if c.tm == nil {
		return nil, errors.New("sqldriver: no transaction manager; build the *sql.DB with sqldriver.Open(tm) and a non-nil *txmanager.Manager")
	}
	return &conn{tm: c.tm}, nil
}

// Driver returns the driver of the connections.
func (c Connector) Driver() driver.Driver { return routingDriver{} }

// routingDriver cannot open connections by name: a *sql.DB of this package comes from
// Open.
type routingDriver struct{}

func (routingDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("sqldriver: open the *sql.DB with sqldriver.Open(tm), not sql.Open")
}

// conn is one database/sql connection: a router. While database/sql runs a
// transaction on it (between BeginTx and Commit or Rollback) its statements go to that
// transaction's scope; otherwise each goes where its ctx says.
type conn struct {
	tm *txmanager.Manager
	tx *tx // the scope database/sql opened on this connection, if any
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
)

// querier returns where a statement with ctx runs, and the context to run it with.
func (c *conn) querier(ctx context.Context) (txmanager.Querier, context.Context) {
	if c.tx != nil {
		return c.tx.tx.Querier(), c.tx.tx.StatementContext(ctx)
	}
	return c.tm.Querier(ctx), ctx
}

// ExecContext runs a statement that returns no rows.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	q, ctx := c.querier(ctx)
	tag, err := q.Exec(ctx, query, values(args)...)
	if err != nil {
		return nil, err
	}
	return result{tag: tag}, nil
}

// QueryContext runs a statement that returns rows.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ctx := c.querier(ctx)
	rs, err := q.Query(ctx, query, values(args)...)
	if err != nil {
		return nil, err
	}
	return newRows(rs), nil
}

// CheckNamedValue accepts every value: pgx converts them itself, driver.Valuer
// included.
func (c *conn) CheckNamedValue(*driver.NamedValue) error { return nil }

// Ping makes a round trip on the pool.
func (c *conn) Ping(ctx context.Context) error { return c.tm.Pool().Ping(ctx) }

// Prepare returns a statement that runs query as ExecContext and QueryContext do
// (pgx prepares and caches statements itself).
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return &stmt{conn: c, query: query}, nil
}

// PrepareContext is Prepare.
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return c.Prepare(query)
}

// Begin is BeginTx with default options and no context.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx opens a Nested scope of ctx's transaction (a savepoint), or begins a
// transaction when ctx carries none. Until it ends, the connection's statements run
// in it whatever context they are given.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.tx != nil {
		return nil, errors.New("sqldriver: a transaction is already open on this connection")
	}
	txOpts, err := txmanager.SQLOptions(&sql.TxOptions{Isolation: sql.IsolationLevel(opts.Isolation), ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("sqldriver: %w", err)
	}
	t, scopeCtx, err := c.tm.Begin(ctx, txOpts...)
	if err != nil {
		return nil, fmt.Errorf("sqldriver: begin: %w", err)
	}
	c.tx = &tx{conn: c, tx: t, ctx: scopeCtx}
	return c.tx, nil
}

// Close does nothing: the connection holds no database connection.
func (c *conn) Close() error { return nil }

// tx is the driver.Tx of BeginTx: one txmanager scope.
type tx struct {
	conn *conn
	tx   *txmanager.Tx
	ctx  context.Context // the scope's context, for Commit and Rollback
}

// Commit ends the scope: it releases its savepoint, or commits the transaction it
// began.
func (t *tx) Commit() error {
	t.conn.tx = nil
	return t.tx.Commit(t.ctx)
}

// Rollback ends the scope, rolling back to its savepoint or rolling back the
// transaction it began.
func (t *tx) Rollback() error {
	t.conn.tx = nil
	return t.tx.Rollback(t.ctx)
}

// stmt is a statement of Prepare.
type stmt struct {
	conn  *conn
	query string
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.conn.ExecContext(ctx, s.query, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.conn.QueryContext(ctx, s.query, args)
}

// Exec and Query serve database/sql's legacy path, which it never takes for a driver
// with the context methods.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}

// values returns the arguments as pgx takes them.
func values(args []driver.NamedValue) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out
}

// result is the driver.Result of ExecContext.
type result struct{ tag pgconn.CommandTag }

func (r result) LastInsertId() (int64, error) { return 0, ErrLastInsertID }
func (r result) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }
