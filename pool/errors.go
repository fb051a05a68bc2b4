package pool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrAcquireTimeout is matched (errors.Is) by the error of an acquisition that gave up
// after [Config.AcquireTimeout]; the error itself is an [*AcquireTimeoutError].
var ErrAcquireTimeout = errors.New("pool: timed out waiting for a connection")

// ErrClosed is returned by [Pool.Acquire] and [Pool.Ping] after [Pool.Close].
var ErrClosed = errors.New("pool: the pool is closed")

// AcquireTimeoutError says that no connection became available within the acquire
// timeout. It matches [ErrAcquireTimeout] and context.DeadlineExceeded.
type AcquireTimeoutError struct {
	Timeout time.Duration // the acquire timeout that expired
	// A snapshot of the pool when the timeout expired.
	MaxConns, AcquiredConns, IdleConns int32
}

// Error says how long the acquisition waited, how busy the pool was, and what to do.
func (e *AcquireTimeoutError) Error() string {
	if e.AcquiredConns >= e.MaxConns {
		return fmt.Sprintf("pool: timed out after %s waiting for a connection: all %d connections are in use; "+
			"release connections sooner (close rows, end transactions) or raise the pool size", e.Timeout, e.MaxConns)
	}
	return fmt.Sprintf("pool: timed out after %s waiting for a connection (%d of %d in use); "+
		"the server may be slow to accept connections", e.Timeout, e.AcquiredConns, e.MaxConns)
}

// Is reports whether target is [ErrAcquireTimeout].
func (e *AcquireTimeoutError) Is(target error) bool { return target == ErrAcquireTimeout }

// Unwrap returns context.DeadlineExceeded: an acquire timeout is a deadline.
func (e *AcquireTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// ConnectError is returned by [New] when no connection could be established before its
// context ended (or the backoff policy gave up, or the server refused the credentials).
type ConnectError struct {
	Attempts int   // connection attempts made
	Err      error // the last cause
}

// Error gives the number of attempts and the last cause.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("pool: could not connect after %d attempt(s): %v", e.Attempts, e.Err)
}

// Unwrap returns the last cause.
func (e *ConnectError) Unwrap() error { return e.Err }
