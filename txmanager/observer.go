package txmanager

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Observer watches the scopes a Manager runs, for traces and metrics: set it as
// [Config.Observer] (package telemetry provides one over OpenTelemetry). Without one,
// observing costs nothing.
//
// The Manager calls StartScope when a scope with a transaction opens, whether [Manager.Do]
// or [Manager.Begin] opened it: each attempt of a transaction (each retry of Do is an
// attempt of its own; Begin's transaction has one), each savepoint scope, and each scope
// that joins the context's transaction. Scopes without a transaction are not observed.
// The scope runs with the context StartScope returns — Do's fn gets it, Begin returns
// it (for a savepoint or transaction, the scope's context derives from it) — so that
// what it carries (a span) is the parent of the statements' and inner scopes' own. The
// Manager calls the returned function exactly once, when the scope has ended: when Do's
// fn returned (or panicked), at the Commit or Rollback of Begin's [Tx]; on the goroutine
// of the scope.
type Observer interface {
	StartScope(ctx context.Context, s ScopeInfo) (context.Context, func(ScopeEnd))
}

// ScopeInfo describes a scope that starts.
type ScopeInfo struct {
	// Name is the transaction's name ([WithName]); empty when it has none.
	Name string
	// Propagation is the propagation the scope was asked for.
	Propagation Propagation
	// Isolation is the isolation level asked for (empty: the server's default);
	// ReadOnly whether the transaction is read-only.
	Isolation pgx.TxIsoLevel
	ReadOnly  bool
	// Depth is 0 for a transaction; for a savepoint scope, its savepoint's depth (1 for
	// the first); for a joined scope, the depth of the scope it joined.
	Depth int
	// Attempt is the attempt number of a transaction, from 1; 0 for a savepoint or
	// joined scope.
	Attempt int
	// Joined: the scope joined the context's transaction (PropagationRequired,
	// Supports or Mandatory inside one). It ends with OutcomeJoined or
	// OutcomeRollbackOnly.
	Joined bool
}

// Outcome is how a scope ended.
type Outcome uint8

const (
	// OutcomeCommitted: the transaction committed.
	OutcomeCommitted Outcome = iota + 1
	// OutcomeRolledBack: the transaction, or the savepoint scope, rolled back.
	OutcomeRolledBack
	// OutcomeRetried: the attempt failed (serialization failure, deadlock, a connection
	// lost before COMMIT) and the transaction runs again.
	OutcomeRetried
	// OutcomeCommitUnknown: the connection failed after COMMIT was sent and the outcome
	// could not be learnt ([ErrCommitOutcomeUnknown]).
	OutcomeCommitUnknown
	// OutcomeReleased: a savepoint scope succeeded (its work joins the transaction's).
	OutcomeReleased
	// OutcomeJoined: a joined scope succeeded; its work commits or rolls back with the
	// transaction it joined.
	OutcomeJoined
	// OutcomeRollbackOnly: a joined scope failed (or its Tx was rolled back), which
	// marks the scope it joined rollback-only.
	OutcomeRollbackOnly
)

var outcomeNames = [...]string{
	OutcomeCommitted:     "committed",
	OutcomeRolledBack:    "rolled_back",
	OutcomeRetried:       "retried",
	OutcomeCommitUnknown: "commit_unknown",
	OutcomeReleased:      "released",
	OutcomeJoined:        "joined",
	OutcomeRollbackOnly:  "rollback_only",
}

// String returns the outcome's name, such as "committed" or "rolled_back".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ScopeEnd is how a scope ended.
type ScopeEnd struct {
	Outcome Outcome
	// Err is the scope's error (nil when it committed, was released or joined
	// successfully). For OutcomeRetried, the error of the attempt.
	Err error
}

// startScope calls the Observer for a scope described by o, depth and attempt (joined:
// a joined scope).
func (m *Manager) startScope(ctx context.Context, o *options, depth, attempt int, joined bool) (context.Context, func(ScopeEnd)) {
	return m.observer.StartScope(ctx, ScopeInfo{
		Name: o.name, Propagation: o.prop, Isolation: o.iso, ReadOnly: o.readOnly,
		Depth: depth, Attempt: attempt, Joined: joined,
	})
}

// endOf returns the ScopeEnd of a transaction attempt or savepoint scope that ended with
// err (retry: the transaction runs again).
func endOf(err error, savepoint, retry bool) ScopeEnd {
	switch {
	case retry:
		return ScopeEnd{Outcome: OutcomeRetried, Err: err}
	case err == nil && savepoint:
		return ScopeEnd{Outcome: OutcomeReleased}
	case err == nil:
		return ScopeEnd{Outcome: OutcomeCommitted}
	case errors.Is(err, ErrCommitOutcomeUnknown):
		return ScopeEnd{Outcome: OutcomeCommitUnknown, Err: err}
	}
	return ScopeEnd{Outcome: OutcomeRolledBack, Err: err}
}

// joinedEnd returns the ScopeEnd of a joined scope that ended with err.
func joinedEnd(err error) ScopeEnd {
	if err != nil {
		return ScopeEnd{Outcome: OutcomeRollbackOnly, Err: err}
	}
	return ScopeEnd{Outcome: OutcomeJoined}
}
