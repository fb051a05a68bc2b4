// Package uowtest is the test kit for applications built on uno: it gives each test
// its own isolated world to run use-cases in, and lets the test see and deliver the
// events they emit without committing anything.
//
// # Isolation
//
// Two ways, for two needs; both let tests run in parallel (t.Parallel).
//
// [Begin] gives a test a context carrying a transaction of the application's
// transaction manager that is rolled back when the test ends. The use-cases under test
// take that context; their Do calls run as savepoint scopes of the test's transaction
// (txmanager.JoinAsNested), so each behaves as it does in production, where it is its
// own transaction:
//
//   - a use-case that succeeds leaves its rows and events in the test's transaction,
//     where the test sees them (and nobody else does: it never commits);
//   - a use-case that fails rolls back its own writes and events only (also when one of
//     its joined scopes failed and the error was swallowed: it returns an error
//     wrapping txmanager.ErrRollbackOnly), and the test goes on in a usable
//     transaction — exactly as if the use-case had run alone;
//   - commit hooks (txmanager.OnCommit) never run, since nothing commits; events are
//     never written to the outbox: [Emitted], [RequireEmitted] and [Deliver] read them
//     from the transaction.
//
// What cannot be isolated this way: a RequiresNew or NotSupported scope runs on
// another connection, outside the test's transaction (it commits for real, cannot see
// the test's rows, and waits on rows the test's transaction has locked); a Never scope
// fails. Code that needs those, or that must really commit (a relay test, a
// subscriber test over a broker), takes a database of its own instead.
//
// [NewDatabase] gives a test a fresh database of its own, cloned (CREATE DATABASE ...
// TEMPLATE: a file copy, no migration) from a template database that [Template]
// describes — uno's tables plus the application's own, migrated once per server and
// version — and dropped when the test ends. Templates are built under an advisory lock, so test processes of several
// packages share them safely.
//
// # Events
//
// [Emitted] returns the events the test's transaction holds (emitted by use-cases that
// succeeded, not by those that rolled back); [RequireEmitted] and
// [RequireNotEmitted] assert on them by topic, key, type and payload; [Payload] decodes
// one. [Deliver] hands them to a Watermill handler synchronously, in the test's
// goroutine and transaction, as the relay would publish them — typically the
// events.Handler of the application's subscriber, optionally wrapped in middlewares.
package uowtest
