package txmanager

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"runtime/debug"

	"github.com/jackc/pgx/v5"
)

// OnCommit registers fn to run after the transaction of ctx commits, on the innermost
// open scope of that transaction. Commit hooks run after the outermost COMMIT succeeded,
// in registration order, with a context that carries no transaction (and is not
// cancelled with the transaction's). Those of a scope rolled back to its savepoint are
// dropped; those of a scope that succeeded join its parent's. A hook that fails or panics
// is logged and does not turn the commit into an error. It returns ErrNoTransaction when
// ctx carries no transaction.
func OnCommit(ctx context.Context, fn func(ctx context.Context) error) error {
	return addHook(ctx, fn, true)
}

// OnRollback registers fn to run after the innermost open scope of ctx's transaction
// rolls back: right after the ROLLBACK TO SAVEPOINT of a savepoint scope, or after the
// transaction's ROLLBACK (including a failed attempt that is retried). Rollback hooks
// run in registration order with a context that carries no transaction; those of a scope
// that succeeded join its parent's; none run when the transaction commits. A hook that
// fails or panics is logged. It returns ErrNoTransaction when ctx carries no transaction.
func OnRollback(ctx context.Context, fn func(ctx context.Context) error) error {
	return addHook(ctx, fn, false)
}

func addHook(ctx context.Context, fn func(ctx context.Context) error, commit bool) error {
	if fn == nil {
		return errors.New("txmanager: the hook is nil")
	}
	sc := scopeFrom(ctx)
	if sc == nil {
		return ErrNoTransaction
	}
	st := sc.st
	if err := st.lock(sc); err != nil {
		return err
	}
	if commit {
		st.commitHooks = append(st.commitHooks, fn)
	} else {
		st.rollbackHooks = append(st.rollbackHooks, fn)
	}
	st.mu.Unlock()
	return nil
}

// CommitWriter turns the items staged with it into statements that travel with COMMIT.
// At the outermost commit, the Manager groups the surviving staged items by writer (in
// the order of each writer's first item), calls QueueCommit once per writer with its
// items in staging order, queues COMMIT, and sends the whole batch in one round trip
// (after BEGIN when no statement began the transaction). If a queued statement fails,
// the transaction rolls back and Do returns the error.
//
// QueueCommit must only queue statements on b: the transaction is busy while it runs.
// Result callbacks set on the queued queries (QueuedQuery.Exec and the like) run after
// the batch was sent; a callback's error that is not the server's cannot undo the COMMIT
// and is logged. A CommitWriter must be comparable (a pointer, typically).
type CommitWriter interface {
	QueueCommit(ctx context.Context, b *pgx.Batch, items []any) error
}

// AfterCommitQueuer is a [CommitWriter] that also queues statements after COMMIT, in
// the same round trip. They run once the transaction has committed, outside it, and
// see what the commit left: the WAL position that includes the commit, for instance.
// Nothing they do changes the transaction's outcome: their failures, and their result
// callbacks' errors, are logged. Their callbacks run only when COMMIT's answer arrived
// and every statement before them succeeded: code that must know the commit happened
// learns it from an OnCommit hook, which runs after them.
type AfterCommitQueuer interface {
	CommitWriter
	QueueAfterCommit(ctx context.Context, b *pgx.Batch, items []any) error
}

// Stage stages items for w on the innermost open scope of ctx's transaction. Items
// staged in a scope rolled back to its savepoint are dropped; those of a scope that
// succeeded join its parent's; a failed attempt discards all. It returns
// ErrNoTransaction when ctx carries no transaction.
func Stage(ctx context.Context, w CommitWriter, items ...any) error {
	if w == nil {
		return errors.New("txmanager: Stage needs a CommitWriter")
	}
	if !reflect.TypeOf(w).Comparable() {
		return errors.New("txmanager: the CommitWriter must be comparable: pass a pointer")
	}
	sc := scopeFrom(ctx)
	if sc == nil {
		return ErrNoTransaction
	}
	if len(items) == 0 {
		return nil
	}
	st := sc.st
	if err := st.lock(sc); err != nil {
		return err
	}
	for _, it := range items {
		st.staged = append(st.staged, stagedItem{w: w, item: it})
	}
	st.mu.Unlock()
	return nil
}

// Staged returns the items staged for w with [Stage] in ctx's transaction and not
// dropped since, in staging order: those of every scope still open and of the scopes
// that succeeded inside them. They are what w will be given at the outermost commit if
// nothing else is staged or rolled back. It lets tests look at a transaction's staged
// work (events, for instance) before it commits, or in one they roll back. It returns
// ErrNoTransaction when ctx carries no transaction, and ErrTxDone when it has ended.
func Staged(ctx context.Context, w CommitWriter) ([]any, error) {
	sc := scopeFrom(ctx)
	if sc == nil {
		return nil, ErrNoTransaction
	}
	st := sc.st
	if err := st.lock(sc); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	var items []any
	for _, s := range st.staged {
		if s.w == w {
			items = append(items, s.item)
		}
	}
	return items, nil
}

// hookContext returns the context hooks run with: base's values, without its
// cancellation and without a transaction.
func hookContext(base context.Context) context.Context {
	ctx := context.WithoutCancel(base)
	if scopeFrom(ctx) != nil {
		ctx = suspend(ctx)
	}
	return ctx
}

// runHooks runs hooks in order; failures and panics are logged.
func (m *Manager) runHooks(ctx context.Context, txName string, hooks []hook, kind string) {
	for _, h := range hooks {
		m.runHook(ctx, txName, h, kind)
	}
}

func (m *Manager) runHook(ctx context.Context, txName string, h hook, kind string) {
	defer func() {
		if r := recover(); r != nil {
			m.logger.LogAttrs(ctx, slog.LevelError, "txmanager: a "+kind+" hook panicked; the other hooks still run",
				attrTx(txName), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	if err := h(ctx); err != nil {
		m.logger.LogAttrs(ctx, slog.LevelError, "txmanager: a "+kind+" hook failed; the other hooks still run",
			attrTx(txName), attrErr(err))
	}
}

func attrTx(name string) slog.Attr { return slog.String("tx", name) }

func attrErr(err error) slog.Attr { return slog.Any("error", err) }
