package txmanager

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrRollbackOnly is wrapped by the error of a transaction (or savepoint scope) that
	// rolled back because a scope that joined it failed, even when the caller swallowed
	// that failure. The joined scope's error is wrapped as well.
	ErrRollbackOnly = errors.New("txmanager: transaction rolled back because a scope that joined it failed (it was marked rollback-only)")

	// ErrNoTransaction is returned by a PropagationMandatory scope, and by OnCommit,
	// OnRollback and Stage, when the context carries no transaction: call them inside
	// Manager.Do.
	ErrNoTransaction = errors.New("txmanager: the context carries no transaction: call this inside Manager.Do (or with a propagation that begins one)")

	// ErrTransactionExists is returned by a PropagationNever scope when the context
	// carries a transaction: run it outside Do, or with NotSupported.
	ErrTransactionExists = errors.New("txmanager: the context carries a transaction but the scope must run without one (PropagationNever)")

	// ErrTxDone is returned when a transaction or scope that has ended is used through a
	// context or Querier kept past its Do (or past Tx.Commit/Rollback).
	ErrTxDone = errors.New("txmanager: the transaction or scope has already ended: do not keep its context or Querier after Do returns")

	// ErrTxBusy is returned when a transaction is used while one of its statements is
	// running or its rows or batch results are still open, which happens when it is used
	// from two goroutines at once or when rows are not closed before the next statement.
	ErrTxBusy = errors.New("txmanager: the transaction is busy: close its open rows or batch results first, and use a transaction from one goroutine at a time")

	// ErrIncompatibleTransaction is returned when a scope asks for an isolation level
	// that differs from that of the transaction it would join.
	ErrIncompatibleTransaction = errors.New("txmanager: the context's transaction does not have the requested isolation level: request it on the outermost scope, or use RequiresNew")
)

// errPanicked is the failure of a scope whose fn panicked (or called runtime.Goexit).
var errPanicked = errors.New("txmanager: the scope panicked")

// errRolledBack is the failure of a scope ended by Tx.Rollback.
var errRolledBack = errors.New("txmanager: the scope was rolled back by Tx.Rollback")

// RetryError is returned by a transaction that kept failing with a serialization failure
// or deadlock until its retry policy (or its context) stopped it. Err is the last
// attempt's error; errors.As finds the *pgconn.PgError in it.
type RetryError struct {
	// Attempts is how many times the transaction ran.
	Attempts int
	// Err is the error of the last attempt.
	Err error
}

// Error says how many attempts were made and why the last one failed.
func (e *RetryError) Error() string {
	return fmt.Sprintf("txmanager: transaction failed after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Err }

// Retryable SQLSTATEs.
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// isRetryable reports whether err carries a serialization failure or a deadlock.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected
}

// ErrCommitOutcomeUnknown is matched (errors.Is) by the error of a transaction whose
// connection failed after COMMIT may have reached the server, when the Manager could not
// learn from the server whether it committed: the transaction may have committed or
// rolled back. Neither commit nor rollback hooks ran, and the transaction was not
// retried: running it again could apply it twice. The error is a [*CommitOutcomeError];
// its TxID, when known, lets an operator look the outcome up later
// (select txid_status(<TxID>)). pgconn.SafeToRetry reports false for it.
var ErrCommitOutcomeUnknown = errors.New("txmanager: the connection failed after COMMIT was sent and the transaction's outcome is unknown: it may have committed")

// CommitOutcomeError is the error of a transaction whose commit outcome is unknown; it
// matches [ErrCommitOutcomeUnknown] and wraps the failure that hid the outcome.
type CommitOutcomeError struct {
	// TxID is the transaction's id (txid_current) when the Manager learnt it before
	// COMMIT, else 0.
	TxID int64
	// Err is the failure that hid the outcome (a broken connection, a deadline, a server
	// shutting down).
	Err error
	// Resolve is why the server could not tell the outcome (no transaction id known, the
	// server unreachable until the resolution gave up), nil when it was not asked.
	Resolve error
}

// Error says that the outcome is unknown, why, and what the transaction id is.
func (e *CommitOutcomeError) Error() string {
	msg := "txmanager: commit outcome unknown: the connection failed after COMMIT was sent, the transaction may have committed"
	if e.TxID != 0 {
		msg += fmt.Sprintf(" (transaction id %d: select txid_status(%d) tells)", e.TxID, e.TxID)
	}
	msg += fmt.Sprintf(": %v", e.Err)
	if e.Resolve != nil {
		msg += fmt.Sprintf(" (not resolved: %v)", e.Resolve)
	}
	return msg
}

// Is reports whether target is [ErrCommitOutcomeUnknown].
func (e *CommitOutcomeError) Is(target error) bool { return target == ErrCommitOutcomeUnknown }

// Unwrap returns the failure that hid the outcome.
func (e *CommitOutcomeError) Unwrap() error { return e.Err }

// SafeToRetry reports false: the transaction may have committed. It makes
// pgconn.SafeToRetry false for the error whatever the failure it wraps.
func (e *CommitOutcomeError) SafeToRetry() bool { return false }

// ErrNestedAcquireDeadlock is matched by the error of a transaction begun inside another
// (RequiresNew, or any scope that needs a connection of its own while the context's
// transaction holds one) when every connection of the pool is held by transactions that
// are themselves waiting for another connection, its own outer transaction among them:
// waiting could never end, so it fails at once. Raise the pool size above the number of
// such transactions that run at once, or use Nested (a savepoint on the same
// connection).
var ErrNestedAcquireDeadlock = errors.New("txmanager: a transaction inside another needs a connection of its own, but every connection of the pool is held by transactions waiting for one (its outer transaction among them)")
