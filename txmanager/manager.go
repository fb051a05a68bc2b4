package txmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
	pool            *pgxpool.Pool
	logger          *slog.Logger
	retry           RetryPolicy
	rollbackTimeout time.Duration

	// Statements that succeeded after a pending SAVEPOINT was sent ahead of them (see
	// txState.route), by SQL text.
	known  sync.Map
	knownN atomic.Int32
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
		logger:          cfg.Logger,
		retry:           cfg.Retry.withDefaults(DefaultRetryPolicy()),
		rollbackTimeout: cfg.RollbackTimeout,
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

// current returns the scope of ctx's transaction if it runs on m's pool. A transaction
// of a Manager over another pool is none of m's business.
func (m *Manager) current(ctx context.Context) *scope {
	sc := scopeFrom(ctx)
	if sc == nil || sc.st.m.pool != m.pool {
		return nil
	}
	return sc
}

// Querier returns what statements of ctx must run through: its transaction when ctx
// carries one of this Manager's pool (even one that has ended, which then fails with
// ErrTxDone rather than silently running outside it), else the pool.
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
	cur := m.current(ctx)
	switch o.prop {
	case PropagationRequired:
		if cur != nil {
			return m.join(ctx, cur, fn, &o)
		}
		return m.runNew(ctx, fn, &o)
	case PropagationNested:
		if cur != nil {
			return m.runNested(ctx, cur, fn, &o)
		}
		return m.runNew(ctx, fn, &o)
	case PropagationRequiresNew:
		return m.runNew(ctx, fn, &o)
	case PropagationSupports:
		if cur != nil {
			return m.join(ctx, cur, fn, &o)
		}
		return fn(ctx)
	case PropagationMandatory:
		if cur == nil {
			return ErrNoTransaction
		}
		return m.join(ctx, cur, fn, &o)
	case PropagationNotSupported:
		if cur != nil {
			return fn(suspend(ctx))
		}
		return fn(ctx)
	default: // PropagationNever
		if cur != nil {
			return ErrTransactionExists
		}
		return fn(ctx)
	}
}

// suspend returns ctx without its transaction.
func suspend(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, (*scope)(nil))
}

// checkJoin checks that cur can be joined (or get a savepoint) with o; it locks st.
func checkJoin(cur *scope, o *options) error {
	st := cur.st
	if err := st.lock(cur); err != nil {
		return err
	}
	if o.iso != "" && o.iso != st.iso {
		st.mu.Unlock()
		have := string(st.iso)
		if have == "" {
			have = "the server default"
		}
		return fmt.Errorf("%w: requested %s, the transaction has %s", ErrIncompatibleTransaction, o.iso, have)
	}
	return nil
}

// join runs fn in cur's transaction; fn's failure marks cur rollback-only.
func (m *Manager) join(ctx context.Context, cur *scope, fn func(context.Context) error, o *options) error {
	if err := checkJoin(cur, o); err != nil {
		return err
	}
	cur.st.mu.Unlock()
	return callJoined(ctx, cur, fn)
}

func callJoined(ctx context.Context, cur *scope, fn func(context.Context) error) (err error) {
	returned := false
	defer func() {
		if !returned {
			cur.markRollbackOnly(errPanicked)
		}
	}()
	err = fn(ctx)
	returned = true
	if err != nil {
		cur.markRollbackOnly(err)
	}
	return err
}

// runNested runs fn in a savepoint of cur's transaction.
func (m *Manager) runNested(ctx context.Context, cur *scope, fn func(context.Context) error, o *options) error {
	if err := checkJoin(cur, o); err != nil {
		return err
	}
	sc := cur.st.pushSavepoint(ctx)
	cur.st.mu.Unlock()
	return callNested(ctx, sc, fn)
}

func callNested(ctx context.Context, sc *scope, fn func(context.Context) error) (err error) {
	returned := false
	defer func() {
		if !returned {
			_ = sc.st.endScope(ctx, ctx, sc, errPanicked)
		}
	}()
	fnErr := fn(sc)
	returned = true
	return sc.st.endScope(ctx, ctx, sc, fnErr)
}

// endScope ends savepoint scope sc and runs its rollback hooks with a context derived
// from base, the context the scope was opened with; opCtx is that of ROLLBACK TO.
func (st *txState) endScope(opCtx, base context.Context, sc *scope, fnErr error) error {
	err, hooks := st.endScopeLocked(opCtx, sc, fnErr)
	if len(hooks) > 0 {
		st.m.runHooks(hookContext(base), st.name, hooks, "rollback")
	}
	return err
}

func (st *txState) endScopeLocked(opCtx context.Context, sc *scope, fnErr error) (error, []hook) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done.Load() || sc.closed {
		return ErrTxDone, nil
	}
	return st.endSavepoint(opCtx, sc, fnErr)
}

// runNew runs fn in a new transaction, retrying it per the retry policy.
func (m *Manager) runNew(ctx context.Context, fn func(context.Context) error, o *options) error {
	policy := m.retry
	if o.retry != nil {
		policy = o.retry.withDefaults(m.retry)
	}
	var bo backoff.BackOff
	for attempt := 1; ; attempt++ {
		err, retryable := m.attempt(ctx, fn, o)
		if err == nil || !retryable {
			return err
		}
		if attempt >= policy.MaxAttempts {
			if attempt == 1 {
				return err
			}
			return &RetryError{Attempts: attempt, Err: err}
		}
		if bo == nil {
			bo = backoff.WithContext(policy.backOff(), ctx)
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: %w)", err, context.Cause(ctx))}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: the context's deadline comes before the next attempt)", err)}
		}
		m.logger.LogAttrs(ctx, slog.LevelDebug, "txmanager: retrying the transaction",
			attrTx(o.name), slog.Int("attempt", attempt+1), slog.Duration("wait", wait), attrErr(err))
		if !sleep(ctx, wait) {
			return &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: %w)", err, context.Cause(ctx))}
		}
	}
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// attempt runs fn once in a new transaction. retryable reports whether the transaction
// failed with a serialization failure or deadlock of its own.
func (m *Manager) attempt(ctx context.Context, fn func(context.Context) error, o *options) (err error, retryable bool) {
	txCtx := ctx
	var cancel context.CancelFunc
	if o.timeout > 0 {
		txCtx, cancel = context.WithTimeout(ctx, o.timeout)
	}
	st := m.newState(txCtx, o)
	returned := false
	defer func() {
		if !returned {
			_ = st.end(txCtx, ctx, errPanicked)
		}
		if cancel != nil {
			cancel()
		}
	}()
	fnErr := fn(&st.root)
	returned = true
	err = st.end(txCtx, ctx, fnErr)
	// Retry when this transaction itself saw a serialization failure or deadlock, and
	// that is why it failed: the error says so, or the error is the consequence of an
	// earlier one that fn swallowed (a statement in the aborted transaction, or COMMIT).
	return err, err != nil && st.retryable && (isRetryable(err) || isRetryable(st.failErr))
}

// end finishes the transaction and runs its hooks with a context derived from base (the
// context the transaction was begun with) that carries no transaction.
func (st *txState) end(opCtx, base context.Context, fnErr error) error {
	err, committed, hooks := st.finish(opCtx, fnErr)
	if len(hooks) > 0 {
		kind := "rollback"
		if committed {
			kind = "commit"
		}
		st.m.runHooks(hookContext(base), st.name, hooks, kind)
	}
	return err
}

// txKind is what a Tx controls.
type txKind uint8

const (
	txNone      txKind = iota // no transaction (Supports, NotSupported, Never)
	txJoined                  // joined the context's transaction
	txSavepoint               // a savepoint scope
	txRoot                    // a transaction of its own
)

// Tx is a scope opened by [Manager.Begin], for code that cannot pass a callback to Do
// (ent's dialect.Tx). Exactly one of Commit and Rollback must be called, on the
// goroutine that called Begin, innermost Tx first; until then a root Tx holds its
// connection (once a statement acquired it).
type Tx struct {
	m      *Manager
	kind   txKind
	sc     *scope
	base   context.Context
	cancel context.CancelFunc
	done   bool
}

// Begin opens a scope exactly as Do would (same propagation rules, lazy BEGIN and
// SAVEPOINT) and returns it with a context that carries it. Nothing is retried. A joined
// Tx's Commit does nothing and its Rollback marks the transaction rollback-only; a
// savepoint Tx releases or rolls back its savepoint; a Tx that began a transaction
// commits or rolls it back.
func (m *Manager) Begin(ctx context.Context, opts ...Option) (*Tx, context.Context, error) {
	var o options
	if len(opts) > 0 {
		if err := o.apply(opts); err != nil {
			return nil, ctx, err
		}
	}
	cur := m.current(ctx)
	switch o.prop {
	case PropagationRequired, PropagationSupports, PropagationMandatory:
		if cur != nil {
			if err := checkJoin(cur, &o); err != nil {
				return nil, ctx, err
			}
			cur.st.mu.Unlock()
			return &Tx{m: m, kind: txJoined, sc: cur, base: ctx}, ctx, nil
		}
		switch o.prop {
		case PropagationSupports:
			return &Tx{m: m, kind: txNone, base: ctx}, ctx, nil
		case PropagationMandatory:
			return nil, ctx, ErrNoTransaction
		}
		return m.beginRoot(ctx, &o)
	case PropagationNested:
		if cur != nil {
			if err := checkJoin(cur, &o); err != nil {
				return nil, ctx, err
			}
			sc := cur.st.pushSavepoint(ctx)
			cur.st.mu.Unlock()
			return &Tx{m: m, kind: txSavepoint, sc: sc, base: ctx}, sc, nil
		}
		return m.beginRoot(ctx, &o)
	case PropagationRequiresNew:
		return m.beginRoot(ctx, &o)
	case PropagationNotSupported:
		if cur != nil {
			ctx = suspend(ctx)
		}
		return &Tx{m: m, kind: txNone, base: ctx}, ctx, nil
	default: // PropagationNever
		if cur != nil {
			return nil, ctx, ErrTransactionExists
		}
		return &Tx{m: m, kind: txNone, base: ctx}, ctx, nil
	}
}

func (m *Manager) beginRoot(ctx context.Context, o *options) (*Tx, context.Context, error) {
	t := &Tx{m: m, kind: txRoot, base: ctx}
	txCtx := ctx
	if o.timeout > 0 {
		txCtx, t.cancel = context.WithTimeout(ctx, o.timeout)
	}
	st := m.newState(txCtx, o)
	t.sc = &st.root
	return t, t.sc, nil
}

// Querier returns what this scope's statements run through: its transaction, or the pool
// for a Tx without one. Use it where the context at hand lacks the transaction.
func (t *Tx) Querier() Querier {
	if t.sc == nil {
		return t.m.pool
	}
	return t.sc
}

// Commit ends the scope successfully: it commits a transaction the Tx began (returning
// an error wrapping ErrRollbackOnly if a joined scope failed, after rolling back),
// releases a savepoint (lazily), and does nothing for a joined Tx.
func (t *Tx) Commit(ctx context.Context) error {
	if t.done {
		return ErrTxDone
	}
	t.done = true
	switch t.kind {
	case txSavepoint:
		return t.sc.st.endScope(ctx, t.base, t.sc, nil)
	case txRoot:
		err := t.sc.st.end(ctx, t.base, nil)
		if t.cancel != nil {
			t.cancel()
		}
		return err
	}
	return nil
}

// Rollback ends the scope with a failure: it rolls back a transaction the Tx began or
// its savepoint, and marks a joined transaction rollback-only. It returns an error only
// when the rollback itself failed.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.done {
		return ErrTxDone
	}
	t.done = true
	var err error
	switch t.kind {
	case txJoined:
		t.sc.markRollbackOnly(errRolledBack)
	case txSavepoint:
		err = t.sc.st.endScope(ctx, t.base, t.sc, errRolledBack)
	case txRoot:
		err = t.sc.st.end(ctx, t.base, errRolledBack)
		if t.cancel != nil {
			t.cancel()
		}
	}
	if errors.Is(err, errRolledBack) {
		// Only the rollback's own failure, if any, is news to the caller.
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				if e != errRolledBack {
					return e
				}
			}
		}
		return nil
	}
	return err
}
