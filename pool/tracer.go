package pool

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tracer is installed as the pgx tracer of the pool's connections. It applies the
// acquire timeout to every acquisition made through pgxpool (pgxpool passes the
// context returned by TraceAcquireStart to the acquisition and then to
// TraceAcquireEnd), and forwards every call to the tracer the caller had configured.
type tracer struct {
	inner pgx.QueryTracer // may be nil
	p     *Pool
}

// acquireScope is stored in the context of one acquisition whose timeout the tracer set.
type acquireScope struct {
	cancel context.CancelFunc
}

type acquireScopeKey struct{}

// timeoutSetKey marks a context whose acquisition timeout Pool.Acquire has set already.
type timeoutSetKey struct{}

// errAcquireTimedOut is the cause of a context ended by the acquire timeout; it tells
// that timeout from any other deadline (the caller's, pgx's connect timeout).
var errAcquireTimedOut = errors.New("pool: acquire timeout")

var (
	_ pgx.QueryTracer       = (*tracer)(nil)
	_ pgx.BatchTracer       = (*tracer)(nil)
	_ pgx.CopyFromTracer    = (*tracer)(nil)
	_ pgx.PrepareTracer     = (*tracer)(nil)
	_ pgx.ConnectTracer     = (*tracer)(nil)
	_ pgxpool.AcquireTracer = (*tracer)(nil)
	_ pgxpool.ReleaseTracer = (*tracer)(nil)
)

func (t *tracer) TraceAcquireStart(ctx context.Context, pool *pgxpool.Pool, data pgxpool.TraceAcquireStartData) context.Context {
	if in, ok := t.inner.(pgxpool.AcquireTracer); ok {
		ctx = in.TraceAcquireStart(ctx, pool, data)
	}
	if d := t.p.cfg.AcquireTimeout; d > 0 && ctx.Value(timeoutSetKey{}) == nil {
		tctx, cancel := context.WithTimeoutCause(ctx, d, errAcquireTimedOut)
		return context.WithValue(tctx, acquireScopeKey{}, &acquireScope{cancel: cancel})
	}
	if ctx.Value(acquireScopeKey{}) != nil {
		// Hide a scope inherited from an enclosing acquisition: it is not this one's.
		ctx = context.WithValue(ctx, acquireScopeKey{}, (*acquireScope)(nil))
	}
	return ctx
}

func (t *tracer) TraceAcquireEnd(ctx context.Context, pool *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	if s, ok := ctx.Value(acquireScopeKey{}).(*acquireScope); ok && s != nil {
		if data.Err != nil && context.Cause(ctx) == errAcquireTimedOut {
			t.p.acquireTimedOut()
		}
		s.cancel()
	}
	if in, ok := t.inner.(pgxpool.AcquireTracer); ok {
		in.TraceAcquireEnd(ctx, pool, data)
	}
}

func (t *tracer) TraceRelease(pool *pgxpool.Pool, data pgxpool.TraceReleaseData) {
	if in, ok := t.inner.(pgxpool.ReleaseTracer); ok {
		in.TraceRelease(pool, data)
	}
}

func (t *tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if t.inner != nil {
		return t.inner.TraceQueryStart(ctx, conn, data)
	}
	return ctx
}

func (t *tracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if t.inner != nil {
		t.inner.TraceQueryEnd(ctx, conn, data)
	}
}

func (t *tracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if in, ok := t.inner.(pgx.BatchTracer); ok {
		return in.TraceBatchStart(ctx, conn, data)
	}
	return ctx
}

func (t *tracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if in, ok := t.inner.(pgx.BatchTracer); ok {
		in.TraceBatchQuery(ctx, conn, data)
	}
}

func (t *tracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if in, ok := t.inner.(pgx.BatchTracer); ok {
		in.TraceBatchEnd(ctx, conn, data)
	}
}

func (t *tracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	if in, ok := t.inner.(pgx.CopyFromTracer); ok {
		return in.TraceCopyFromStart(ctx, conn, data)
	}
	return ctx
}

func (t *tracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if in, ok := t.inner.(pgx.CopyFromTracer); ok {
		in.TraceCopyFromEnd(ctx, conn, data)
	}
}

func (t *tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if in, ok := t.inner.(pgx.PrepareTracer); ok {
		return in.TracePrepareStart(ctx, conn, data)
	}
	return ctx
}

func (t *tracer) TracePrepareEnd(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareEndData) {
	if in, ok := t.inner.(pgx.PrepareTracer); ok {
		in.TracePrepareEnd(ctx, conn, data)
	}
}

func (t *tracer) TraceConnectStart(ctx context.Context, data pgx.TraceConnectStartData) context.Context {
	if in, ok := t.inner.(pgx.ConnectTracer); ok {
		return in.TraceConnectStart(ctx, data)
	}
	return ctx
}

func (t *tracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	if in, ok := t.inner.(pgx.ConnectTracer); ok {
		in.TraceConnectEnd(ctx, data)
	}
}
