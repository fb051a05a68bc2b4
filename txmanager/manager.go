package txmanager

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uno-framework/uno/internal/lru"
)

// Querier is the pgx-shaped interface statements run through. *pgxpool.Pool, pgx.Tx and
// *pgx.Conn satisfy it, and so does what [Manager.Querier] returns for a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
}

// Manager runs transactions on a pgx pool and carries them in contexts. It is safe for
// concurrent use; each transaction belongs to the goroutine that runs it.
type Manager struct {
	pool *pgxpool.Pool
	// home identifies the transactions the Manager's scopes join (see current): its own
	// pool, or, for a Manager made by [Manager.Replica], the home of the Manager it was
	// made from.
	home            *pgxpool.Pool
	readOnly        bool // every transaction begins READ ONLY (a replica's Manager)
	logger          *slog.Logger
	retry           RetryPolicy
	rollbackTimeout time.Duration
	resolveTimeout  time.Duration
	observer        Observer // nil: none

	// Statements that succeeded on the first-run route (see txState.route).
	seen *lru.Set[string]

	// Connections held by transactions whose nested transaction waits for another one.
	heldByWaiters atomic.Int64
}

// New returns a Manager over pool. It fails when pool is nil or cfg is invalid.
func New(pool *pgxpool.Pool, cfg Config) (*Manager, error) {
	if pool == nil {
		return nil, errors.New("txmanager: New needs a pool: pass the *pgxpool.Pool of the provider")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		pool:            pool,
		home:            pool,
		logger:          cfg.Logger,
		retry:           cfg.Retry.withDefaults(DefaultRetryPolicy()),
		rollbackTimeout: cfg.RollbackTimeout,
		resolveTimeout:  cfg.CommitResolveTimeout,
		seen:            lru.New[string](seenStatements),
		observer:        cfg.Observer,
	}
	if m.resolveTimeout == 0 {
		m.resolveTimeout = defaultResolveTimeout
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	if m.rollbackTimeout == 0 {
		m.rollbackTimeout = defaultRollbackTimeout
	}
	return m, nil
}

// Pool returns the pool the Manager runs on.
func (m *Manager) Pool() *pgxpool.Pool { return m.pool }

// Replica returns a Manager over pool, a pool of a streaming replica (a hot standby) of
// m's database, whose transactions m adopts as its own: inside one, m.Querier, m's
// Querier methods and the ent and database/sql drivers over m run on the replica's
// transaction, and m's Do and Begin join it (Required) or open a savepoint in it
// (Nested), as the replica Manager's scopes do in a transaction of m. Every transaction
// the replica Manager begins is READ ONLY, so a write inside one fails with SQLSTATE
// 25006 instead of running on the primary. m's RequiresNew and NotSupported scopes
// inside a replica transaction run on m's pool. The replica Manager shares m's
// configuration (logger, retry policy, timeouts, observer); its Pool is pool. Package
// replica builds its replicas' Managers with it.
//
// It fails when pool is nil or is the pool of m (or of the Manager m was made from).
func (m *Manager) Replica(pool *pgxpool.Pool) (*Manager, error) {
	if pool == nil {
		return nil, errors.New("txmanager: Replica needs the replica's pool: pass the *pgxpool.Pool of the standby")
	}
	if pool == m.pool || pool == m.home {
		return nil, errors.New("txmanager: Replica needs a pool of the replica's own: pass a pool on the standby's address, not the primary Manager's pool")
	}
	return &Manager{
		pool:            pool,
		home:            m.home,
		readOnly:        true,
		logger:          m.logger,
		retry:           m.retry,
		rollbackTimeout: m.rollbackTimeout,
		resolveTimeout:  m.resolveTimeout,
		observer:        m.observer,
		seen:            lru.New[string](seenStatements),
	}, nil
}

// current returns the scope of ctx's transaction if it is one m joins: a transaction of
// a Manager over m's pool, or of a replica's Manager made from one ([Manager.Replica]).
// A transaction of a Manager over another database is none of m's business.
func (m *Manager) current(ctx context.Context) *scope {
	sc := scopeFrom(ctx)
	if sc == nil || sc.st.m.home != m.home {
		return nil
	}
	return sc
}

// Querier returns what statements of ctx must run through: its transaction when ctx
// carries one of this Manager's pool or of one of its replicas ([Manager.Replica]) —
// even one that has ended, which then fails with ErrTxDone rather than silently running
// outside it — else the pool.
//
// In a transaction, the Querier sends the control statements still pending (BEGIN,
// SAVEPOINT, RELEASE SAVEPOINT) in the same round trip as the statement. Rows and batch
// results must be closed before the next statement; until then the transaction is busy.
func (m *Manager) Querier(ctx context.Context) Querier {
	if sc := m.current(ctx); sc != nil {
		return sc
	}
	return m.pool
}

// QuerierFrom returns the transaction ctx carries (any Manager's), else fallback.
func QuerierFrom(ctx context.Context, fallback Querier) Querier {
	if sc := scopeFrom(ctx); sc != nil {
		return sc
	}
	return fallback
}

// InTransaction reports whether ctx carries a transaction that has not ended.
func InTransaction(ctx context.Context) bool {
	sc := scopeFrom(ctx)
	return sc != nil && !sc.st.done.Load()
}

// Do runs fn in a scope that relates to ctx's transaction as opts say (by default
// PropagationRequired: join it, or begin one), with a context that carries the scope's
// transaction (or none, for NotSupported and for Supports and Never without one).
//
// When Do begins the transaction, it commits when fn returns nil and rolls back when fn
// returns an error, panics (the panic goes on after the rollback) or when the context
// ends; it retries fn on serialization failures and deadlocks per its RetryPolicy; the
// connection always goes back to the pool. BEGIN is sent with fn's first statement, and a
// Do whose fn runs no statement sends nothing.
//
// When Do joins a transaction, an error of fn (or a panic) marks the transaction — or the
// savepoint scope it joined — rollback-only: it rolls back when it ends and its Do
// returns an error wrapping ErrRollbackOnly and fn's error, even if the caller ignored
// fn's error.
//
// A Nested Do in a transaction runs fn in a savepoint: when fn fails, only fn's work is
// rolled back (and its commit hooks and staged items dropped, its rollback hooks run), Do
// returns fn's error and the transaction goes on. The SAVEPOINT is sent with fn's first
// statement, its RELEASE with the next statement after fn or not at all before COMMIT.
func (m *Manager) Do(ctx context.Context, fn func(ctx context.Context) error, opts ...Option) error {
	if fn == nil {
		return errors.New("txmanager: Do needs a function to run")
	}
	var o options
	if len(opts) > 0 {
		if err := o.apply(opts); err != nil {
			return err
		}
	}
	if m.readOnly {
		o.readOnly = true
	}
	op, err := m.openScope(ctx, &o)
	if err != nil {
		return err
	}
	switch op.kind {
	case scopeJoined:
		if m.observer != nil {
			return m.callJoinedObserved(ctx, op.sc, fn, &o)
		}
		return callJoined(ctx, op.sc, fn)
	case scopeSavepoint:
		if m.observer != nil {
			return m.callNestedObserved(ctx, op.sc, fn, &o)
		}
		return callNested(ctx, op.sc, fn)
	case scopeRoot:
		return m.runNew(ctx, fn, &o)
	default:
		return fn(op.ctx)
	}
}
