package txmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// runNew runs fn in a new transaction, retrying it per the retry policy.
func (m *Manager) runNew(ctx context.Context, fn func(context.Context) error, o *options) error {
	policy := m.retry
	if o.retry != nil {
		policy = o.retry.withDefaults(m.retry)
	}
	var bo backoff.BackOff
	for attempt := 1; ; attempt++ {
		actx, end := ctx, func(ScopeEnd) {}
		if m.observer != nil {
			actx, end = m.startScope(ctx, o, 0, attempt, false)
		}
		err, retryable := m.observedAttempt(actx, fn, o, end)
		wait, retErr := m.nextAttempt(ctx, policy, &bo, attempt, err, retryable)
		end(endOf(err, false, err != nil && retErr == nil))
		if retErr != nil || err == nil {
			return retErr
		}
		m.logger.LogAttrs(ctx, slog.LevelDebug, "txmanager: retrying the transaction",
			attrTx(o.name), slog.Int("attempt", attempt+1), slog.Duration("wait", wait), attrErr(err))
		if !sleep(ctx, wait) {
			return &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: %w)", err, context.Cause(ctx))}
		}
	}
}

// observedAttempt is attempt, calling end if fn panics.
func (m *Manager) observedAttempt(ctx context.Context, fn func(context.Context) error, o *options, end func(ScopeEnd)) (err error, retryable bool) {
	returned := false
	defer func() {
		if !returned {
			end(ScopeEnd{Outcome: OutcomeRolledBack, Err: errPanicked})
		}
	}()
	err, retryable = m.attempt(ctx, fn, o)
	returned = true
	return err, retryable
}

// nextAttempt decides what follows attempt number attempt, which ended with err: it
// returns the wait before the next attempt and a nil error when the transaction runs
// again, else the error Do returns (nil when the attempt committed).
func (m *Manager) nextAttempt(ctx context.Context, policy RetryPolicy, bo *backoff.BackOff, attempt int, err error, retryable bool) (time.Duration, error) {
	if err == nil {
		return 0, nil
	}
	if !retryable {
		return 0, err
	}
	if attempt >= policy.MaxAttempts {
		if attempt == 1 {
			return 0, err
		}
		return 0, &RetryError{Attempts: attempt, Err: err}
	}
	if *bo == nil {
		*bo = backoff.WithContext(policy.backOff(), ctx)
	}
	wait := (*bo).NextBackOff()
	if wait == backoff.Stop {
		return 0, &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: %w)", err, context.Cause(ctx))}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return 0, &RetryError{Attempts: attempt, Err: fmt.Errorf("%w (not retried: the context's deadline comes before the next attempt)", err)}
	}
	return wait, nil
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
	// A connection that broke before COMMIT was sent (or whose lost COMMIT the server
	// reports rolled back) is retried too, unless the attempt's context ended: the
	// transaction surely did not commit. An unknown commit outcome never is.
	if err == nil || errors.Is(err, ErrCommitOutcomeUnknown) {
		return err, false
	}
	if st.connLost && txCtx.Err() == nil {
		return err, true
	}
	return err, st.retryable && (isRetryable(err) || isRetryable(st.failErr))
}
