package entdriver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uno-framework/uno/txmanager"
)

var (
	// ErrNoManager is returned by every method of a Driver built with a nil
	// *txmanager.Manager.
	ErrNoManager = errors.New("entdriver: no transaction manager; build the driver with entdriver.New(tm) and a non-nil *txmanager.Manager")

	// ErrColumnTypes is returned by Rows.ColumnTypes: pgx rows cannot produce
	// database/sql's *sql.ColumnType. ent's queries do without it; run code that needs
	// it (such as ent's migration engine, see schema.Migrate) on a database/sql view of
	// the pool.
	ErrColumnTypes = errors.New("entdriver: pgx rows cannot describe columns as *sql.ColumnType; use Columns, or run this code on a database/sql view of the pool (stdlib.OpenDBFromPool), as schema.Migrate does")

	// ErrLastInsertID is returned by the LastInsertId method of the results Exec
	// stores: PostgreSQL has no last insert id. Use INSERT ... RETURNING.
	ErrLastInsertID = errors.New("entdriver: PostgreSQL has no last insert id; use INSERT ... RETURNING")
)

// Driver is an ent dialect.Driver for PostgreSQL that runs statements through pgx on
// the transaction the context carries (see txmanager.Manager.Querier), else on the
// pool. It is safe for concurrent use; build one at start-up.
type Driver struct {
	tm *txmanager.Manager
}

var _ dialect.Driver = (*Driver)(nil)

// New returns a driver over tm. Build the ent client on it once:
//
//	client := ent.NewClient(ent.Driver(entdriver.New(tm)))
func New(tm *txmanager.Manager) *Driver {
	return &Driver{tm: tm}
}

// Dialect returns "postgres".
func (d *Driver) Dialect() string { return dialect.Postgres }

// Exec runs a statement that returns no rows on the ctx's transaction, else on the
// pool. args must be a []any; v must be nil or a *sql.Result (the database/sql one,
// which ent's dialect/sql passes), which receives the rows affected.
func (d *Driver) Exec(ctx context.Context, query string, args, v any) error {
	if d == nil || d.tm == nil {
		return ErrNoManager
	}
	return runExec(ctx, d.tm.Querier(ctx), query, args, v)
}

// Query runs a statement that returns rows on the ctx's transaction, else on the
// pool. args must be a []any; v must be a *entgo.io/ent/dialect/sql.Rows, which
// receives the rows. The caller closes them, which releases the connection when the
// statement ran on the pool.
func (d *Driver) Query(ctx context.Context, query string, args, v any) error {
	if d == nil || d.tm == nil {
		return ErrNoManager
	}
	return runQuery(ctx, d.tm.Querier(ctx), query, args, v)
}

// Tx opens the scope ent runs a multi-statement operation in. Inside a transaction it
// is a Nested scope (a savepoint, sent with the scope's first statement; its release
// is sent with the next statement, or not at all before COMMIT), so ent's operations
// cost no extra round trip and a failed one rolls back only its own statements. Outside
// a transaction it begins one (BEGIN is sent with the first statement).
//
// The returned transaction's Exec and Query run on that scope whatever context they
// are given; its Commit and Rollback end the scope.
func (d *Driver) Tx(ctx context.Context) (dialect.Tx, error) {
	return d.BeginTx(ctx, nil)
}

// BeginTx is Tx with database/sql transaction options, as ent's Client.BeginTx passes
// them: the isolation level and read-only mode apply when a new transaction begins.
// Inside a transaction they are ignored, except that an isolation level other than the
// transaction's fails with txmanager.ErrIncompatibleTransaction. sql.LevelSnapshot is
// PostgreSQL's REPEATABLE READ; levels PostgreSQL lacks are an error.
func (d *Driver) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	if d == nil || d.tm == nil {
		return nil, ErrNoManager
	}
	txOpts, err := txmanager.SQLOptions(opts)
	if err != nil {
		return nil, err
	}
	tx, scopeCtx, err := d.tm.Begin(ctx, txOpts...)
	if err != nil {
		return nil, fmt.Errorf("entdriver: begin ent transaction: %w", err)
	}
	return &Tx{tx: tx, ctx: scopeCtx}, nil
}

// Close does nothing and returns nil: the pool belongs to whoever built the
// txmanager.Manager (the provider), which closes it.
func (d *Driver) Close() error { return nil }

// Tx is the dialect.Tx Driver.Tx returns: one txmanager scope. Like the scope, it
// belongs to the goroutine that opened it. Once it is committed or rolled back, its
// methods return an error wrapping txmanager.ErrTxDone.
type Tx struct {
	tx  *txmanager.Tx
	ctx context.Context // the scope's context, for Commit and Rollback
}

var _ dialect.Tx = (*Tx)(nil)

// Exec runs a statement on the transaction's scope, whatever ctx carries, as
// Driver.Exec does otherwise.
func (t *Tx) Exec(ctx context.Context, query string, args, v any) error {
	return runExec(t.tx.StatementContext(ctx), t.tx.Querier(), query, args, v)
}

// Query runs a statement on the transaction's scope, whatever ctx carries, as
// Driver.Query does otherwise.
func (t *Tx) Query(ctx context.Context, query string, args, v any) error {
	return runQuery(t.tx.StatementContext(ctx), t.tx.Querier(), query, args, v)
}

// Commit ends the scope: it releases its savepoint (the RELEASE travels with the
// transaction's next statement), or commits the transaction it began.
func (t *Tx) Commit() error {
	return t.tx.Commit(t.ctx)
}

// Rollback ends the scope, rolling back to its savepoint or rolling back the
// transaction it began.
func (t *Tx) Rollback() error {
	return t.tx.Rollback(t.ctx)
}

func arguments(args any) ([]any, error) {
	switch a := args.(type) {
	case nil:
		return nil, nil
	case []any:
		return a, nil
	default:
		return nil, fmt.Errorf("entdriver: arguments of type %T; want []any", args)
	}
}

func runExec(ctx context.Context, q txmanager.Querier, sqlText string, args, v any) error {
	argv, err := arguments(args)
	if err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		_, err := q.Exec(ctx, sqlText, argv...)
		return err
	case *sql.Result:
		tag, err := q.Exec(ctx, sqlText, argv...)
		if err != nil {
			return err
		}
		*v = result{tag: tag}
		return nil
	default:
		return fmt.Errorf("entdriver: Exec result of type %T; want nil or *sql.Result", v)
	}
}

func runQuery(ctx context.Context, q txmanager.Querier, sqlText string, args, v any) error {
	dst, ok := v.(*entsql.Rows)
	if !ok {
		return fmt.Errorf("entdriver: Query result of type %T; want *entgo.io/ent/dialect/sql.Rows", v)
	}
	argv, err := arguments(args)
	if err != nil {
		return err
	}
	rs, err := q.Query(ctx, sqlText, argv...)
	if err != nil {
		return err
	}
	*dst = entsql.Rows{ColumnScanner: &Rows{rows: rs}}
	return nil
}

// result is the sql.Result Exec stores.
type result struct{ tag pgconn.CommandTag }

func (r result) LastInsertId() (int64, error) { return 0, ErrLastInsertID }
func (r result) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }
