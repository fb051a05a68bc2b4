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
// The Manager calls StartScope when an attempt of a transaction begins (each retry is an
// attempt of its own) and when a Nested scope opens a savepoint in a transaction; joined
// scopes, scopes without a transaction and the scopes of [Manager.Begin] are not
// observed. fn runs with the context StartScope returns, so that what it carries (a
// span) is the parent of the statements' and inner scopes' own. The Manager calls the
// returned function exactly once, when the scope has ended (also when fn panicked), on
// the goroutine of the scope.
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
	// Depth is 0 for a transaction, and the savepoint's depth (1 for the first) for a
	// savepoint scope.
	Depth int
	// Attempt is the attempt number of a transaction, from 1; 0 for a savepoint scope.
	Attempt int
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
)

var outcomeNames = [...]string{
	OutcomeCommitted:     "committed",
	OutcomeRolledBack:    "rolled_back",
	OutcomeRetried:       "retried",
	OutcomeCommitUnknown: "commit_unknown",
	OutcomeReleased:      "released",
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
	// Err is the scope's error (nil when it committed or was released). For
	// OutcomeRetried, the error of the attempt.
	Err error
}

// startScope calls the Observer for a scope described by o, depth and attempt.
func (m *Manager) startScope(ctx context.Context, o *options, depth, attempt int) (context.Context, func(ScopeEnd)) {
	return m.observer.StartScope(ctx, ScopeInfo{
		Name: o.name, Propagation: o.prop, Isolation: o.iso, ReadOnly: o.readOnly,
		Depth: depth, Attempt: attempt,
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
