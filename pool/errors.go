package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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

// ConnectError is returned by [New] (and by provider.New, which builds the pool) when
// no connection could be established: the retries ran out of time (the caller's ctx,
// or [Config.ConnectRetryTimeout] when ctx has no deadline) or the server refused the
// credentials or the database. It names the server, never the password, and wraps the
// last cause.
type ConnectError struct {
	Host     string // the server as host:port; several, comma-separated, when the config lists several
	Database string
	User     string
	Attempts int // connection attempts made
	// GaveUpAfter is Config.ConnectRetryTimeout when that bound, not the caller's
	// context, ended the retries; zero otherwise.
	GaveUpAfter time.Duration
	Err         error // the last cause, the password removed from its message
}

// Error names the server, the database and the user, says how many attempts were made
// and why they stopped, gives the last cause once, then what to do about it.
func (e *ConnectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot connect to PostgreSQL at %s, database %s, user %s, after %d attempt(s)",
		e.Host, strconv.Quote(e.Database), strconv.Quote(e.User), e.Attempts)
	if e.GaveUpAfter > 0 {
		fmt.Fprintf(&b, " (gave up after %s, the connect retry timeout, as the context had no deadline)", e.GaveUpAfter)
	}
	fmt.Fprintf(&b, ": %v (%s)", e.Err, connectHint(e.Err))
	return b.String()
}

// Unwrap returns the last cause.
func (e *ConnectError) Unwrap() error { return e.Err }

// connectHint says what to do about the cause of a failed connection.
func connectHint(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28"):
		return "the server rejected the login: check the user name, the password or passfile, and pg_hba.conf"
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return "the database does not exist: create it, or fix the database name"
	case errors.As(err, &pgErr):
		return "the server refused the connection: see its message"
	case errors.Is(err, context.Canceled):
		return "the caller cancelled the context"
	default:
		return "check that the server is running and reachable at that address, and that the port and sslmode are right"
	}
}
