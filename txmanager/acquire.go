package txmanager

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/pool"
)

// acquire acquires the connection of st. The pool's acquire timeout applies and its
// expiry is reported with the pool's typed error (pool.ErrAcquireTimeout). A transaction
// begun inside another of the same pool waits only while that can end: when every
// connection is held by transactions waiting for one more, it fails at once with
// ErrNestedAcquireDeadlock.
func (m *Manager) acquire(ctx context.Context, st *txState) (*pgxpool.Conn, error) {
	held := st.heldByOuter()
	if held == 0 {
		c, err := pool.AcquireFrom(ctx, m.pool)
		if err != nil {
			return nil, fmt.Errorf("txmanager: acquire a connection for the transaction: %w", err)
		}
		return c, nil
	}
	maxConns := int64(m.pool.Stat().MaxConns())
	waiting := m.heldByWaiters.Add(held)
	defer m.heldByWaiters.Add(-held)
	if waiting >= maxConns {
		return nil, fmt.Errorf("%w: its outer transactions hold %d of the pool's %d connections; raise the pool size or use Nested",
			ErrNestedAcquireDeadlock, held, maxConns)
	}
	c, err := pool.AcquireFrom(ctx, m.pool)
	if err != nil {
		return nil, fmt.Errorf("txmanager: acquire a connection for a transaction inside another (its outer transactions hold %d of the pool's %d connections): %w",
			held, maxConns, err)
	}
	return c, nil
}

// heldByOuter returns how many connections of st's pool the transactions enclosing st
// (through the context it was begun with) hold; an enclosing transaction of a replica's
// Manager ([Manager.Replica]) holds a connection of the replica's pool, not the
// primary's. They are suspended on this goroutine, so reading their state needs no lock.
func (st *txState) heldByOuter() int64 {
	var n int64
	ctx := st.root.Context
	for {
		sc, _ := ctx.Value(ctxKey{}).(*scope)
		if sc == nil {
			return n
		}
		if sc.st.m.pool == st.m.pool && sc.st.conn != nil {
			n++
		}
		ctx = sc.st.root.Context
	}
}
