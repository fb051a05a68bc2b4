// Package txmanager runs PostgreSQL transactions whose boundaries travel in the
// context.Context: propagation modes as in Spring, savepoints nested to any depth,
// retries of serialization failures and deadlocks, commit and rollback hooks, and items
// staged to be written together with COMMIT.
//
// # Transactions in the context
//
// [Manager.Do] runs fn with a context that carries the transaction; everything that
// takes that context joins it: pgx code through [Manager.Querier] (or [QuerierFrom]),
// the ent client through txmanager/entdriver, the outbox through [Stage].
//
//	err := tm.Do(ctx, func(ctx context.Context) error {
//		_, err := tm.Querier(ctx).Exec(ctx, "insert into accounts (owner) values ($1)", "ann")
//		return err // nil commits, an error rolls back
//	})
//
// Outside a transaction, Querier returns the pool, so the same code runs in autocommit.
//
// A Manager made with [Manager.Replica] runs read-only transactions on a streaming
// replica's pool, and the primary's Manager adopts them: inside one, the same code
// (tm.Querier, the drivers over tm) reads on the replica, and a write fails with
// SQLSTATE 25006 instead of running on the primary. Package replica builds on it.
//
// # Propagation
//
//	Required (default)  join the context's transaction, or begin one
//	Nested              a savepoint in the context's transaction, or begin one
//	RequiresNew         a separate transaction on another connection; the outer one is
//	                    suspended (it keeps its connection: size the pool for both)
//	Supports            join the context's transaction, or run without one
//	Mandatory           join the context's transaction, or fail with ErrNoTransaction
//	NotSupported        run without a transaction (on the pool), suspending the context's
//	Never               run without a transaction, or fail with ErrTransactionExists
//
// Isolation ([WithIsolation]), [ReadOnly], [Deferrable], [WithTimeout] and [WithRetry]
// apply only when the call begins a transaction. When it joins one, or opens a savepoint
// in one, they are ignored — except that asking for an isolation level other than the
// transaction's fails with [ErrIncompatibleTransaction], because silently running with
// a weaker (or different) isolation than requested would hide anomalies; read-only,
// deferrable, timeout and retry cannot weaken the guarantees a caller relies on, so they
// are ignored as Spring does.
//
// # Rollback-only
//
// A scope that joined a transaction and failed (returned an error or panicked) marks
// the scope it joined rollback-only: the transaction, or the savepoint scope it joined,
// rolls back when it ends, and its Do returns an error wrapping [ErrRollbackOnly] and the
// joined scope's error, even when the caller swallowed that error. A Nested scope that
// fails rolls back to its savepoint only; the outer transaction goes on.
//
// # Round trips
//
// A transaction costs no more round trips than the fewest a hand-written pgx program
// needs. The connection is acquired and BEGIN is sent with the first statement, in one
// pipelined batch; a SAVEPOINT is sent with the first statement of its scope; a RELEASE
// SAVEPOINT with the next statement after its scope, or not at all before COMMIT (which
// releases everything); staged items' statements with COMMIT. A Do with one statement
// costs 2 round trips (BEGIN+statement, COMMIT) where pgx.BeginFunc costs 3; a
// successful Nested scope adds none beyond its own statements; a Do that runs no
// statement acquires no connection and sends nothing. Rolling back to a savepoint costs
// one round trip; a statement that follows pending control statements goes through the
// extended protocol as a batch, and CopyFrom sends pending control statements in a
// round trip of their own. Savepoint names are generated (uno_sp_1, uno_sp_2, ... by
// depth), never taken from user input.
//
// The first time a Manager sees a statement in a fresh savepoint, the SAVEPOINT is sent
// first and the statement then parsed and run in one round trip: pgx would otherwise
// prepare the statement before the SAVEPOINT ran, and a statement that fails to parse
// would abort the whole transaction instead of only its scope. That costs one round trip
// more than a statement pgx has prepared on the connection, as pgx's own preparation of
// a new statement does. The Manager remembers the last 4096 statements that succeeded so
// (least recently used forgotten first).
//
// # Retries
//
// The scope that begins a transaction (Required or Nested without one, RequiresNew)
// retries it when it failed with SQLSTATE 40001 (serialization failure) or 40P01
// (deadlock) — raised by a statement or by COMMIT, even when fn swallowed the statement's
// error — following its [RetryPolicy]: exponential back-off with jitter
// (github.com/cenkalti/backoff/v4), a maximum number of attempts ([DefaultRetryPolicy]:
// 3) and the context's deadline. Each attempt starts afresh: hooks and staged items of a
// failed attempt are discarded, after its rollback hooks ran. When the attempts run out
// Do returns a [*RetryError] that wraps the last error; with MaxAttempts 1 the error
// itself comes back. errors.As finds the *pgconn.PgError in both. Nothing is retried
// inside a transaction: a joined or Nested scope returns its error to its caller.
//
// A transaction whose connection broke before COMMIT was sent (a killed backend, a
// server restart, a network failure; not the end of the context) surely did not commit,
// and is retried under the same policy: fn runs again from the start. As with
// serialization failures, effects of fn outside the database (a message sent, a file
// written) happen once per attempt; put them in OnCommit hooks or the outbox, which run
// or commit once, with the attempt that committed.
//
// # Commit outcomes
//
// Every transaction ends in one of three reported outcomes: committed (nil, commit hooks
// run), rolled back (an error, rollback hooks run), or unknown. When the connection
// fails after COMMIT may have reached the server, the Manager asks the server what
// became of the transaction: the first statement that may write carries, in its own
// round trip, a query for the transaction's id (txid_current_if_assigned), and after a
// lost COMMIT a fresh connection asks txid_status for it, waiting for a restarting
// server up to Config.CommitResolveTimeout and never past the context. Committed: Do
// returns nil and runs the commit hooks. Rolled back: Do fails as any rolled-back
// transaction (and retries it, as above). When the server cannot tell (no statement
// before COMMIT wrote, such as a transaction whose only writes are staged items; the
// server stayed unreachable; the context ended; the server restarted since and reports
// the id committed, which after a crash may be another transaction's, since a server
// hands out again the ids that never reached its log; with several hosts, the server
// the transaction ran on is not the one that answers, or it cannot be reached while
// another of the hosts now accepts writes — a failover, after which waiting for the old
// server is pointless, so Do gives up at once), Do returns a [*CommitOutcomeError]
// matching [ErrCommitOutcomeUnknown]: no hook of either kind runs, the transaction is
// not retried, and pgconn.SafeToRetry reports false for it. Its TxID, when known, lets
// the outcome be looked up later. Read-only statements never carry the id query, so
// read-only transactions pay nothing for this. A lost COMMIT of a transaction begun
// READ ONLY ([ReadOnly], a replica's) whose statements all succeeded needs no asking:
// it wrote nothing, so Do returns nil and runs the commit hooks (except under
// SERIALIZABLE, whose COMMIT may still fail a serialization check).
//
// # Connections
//
// A transaction acquires its connection with its first statement. On a pool built by
// package pool, the pool's acquire timeout applies and its expiry is reported with the
// pool's typed error (errors.Is(err, pool.ErrAcquireTimeout)). A transaction begun
// inside another one (RequiresNew) needs a second connection while the outer one keeps
// its own; when every connection of the pool is held by transactions waiting for such a
// second connection, waiting could never end, and Do fails at once with
// [ErrNestedAcquireDeadlock].
//
// # Hooks and staged items
//
// [OnCommit] and [OnRollback] register callbacks on the innermost open scope of the
// context's transaction; [Stage] stages items for a [CommitWriter]. A scope rolled back
// to its savepoint drops its commit hooks and staged items and runs its rollback hooks;
// a scope that succeeds hands them to its parent. Commit hooks run after the outermost
// COMMIT succeeded, in registration order, with a context that carries no transaction; a
// hook that fails or panics is logged with log/slog and never turns a commit into an
// error.
//
// # Failures, panics and goroutines
//
// A panic in fn rolls back and goes on; a context that ends (cancelled, or past the
// WithTimeout deadline) rolls back, the ROLLBACK itself being sent on a fresh context
// bounded by Config.RollbackTimeout. If the ROLLBACK fails the connection is closed, so
// that the pool destroys it instead of reusing it dirty. The connection always goes back
// to the pool when the transaction ends.
//
// A transaction belongs to the goroutine that runs it. The Manager starts no goroutine,
// and a transaction used from another goroutine while it is in use — or used while its
// rows or batch results are still open — fails with [ErrTxBusy] instead of corrupting
// the connection; one used after it ended fails with [ErrTxDone].
//
// # Code that cannot pass a callback
//
// [Manager.Begin] opens a scope exactly as Do would and returns a [Tx] and the context
// that carries it; Commit or Rollback ends it. txmanager/entdriver uses it for ent's
// dialect.Tx, so that ent's internal transactions join the context's for free.
//
// # Observing and testing
//
// [Config.Observer] sees each scope with a transaction start and end, Do's and Begin's
// (package telemetry turns that into OpenTelemetry spans and metrics); without one,
// nothing is observed and nothing is paid. [JoinAsNested] makes the scopes that would
// join a transaction at its top level run as savepoint scopes, and [Staged] reads what a
// transaction has staged: package uowtest builds its per-test transactions on both.
package txmanager
