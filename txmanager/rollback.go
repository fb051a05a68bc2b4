package txmanager

import (
	"context"
	"fmt"
	"time"
)

// rollback rolls the transaction back if the connection is in one; when that fails the
// connection is closed so that the pool destroys it instead of reusing it.
func (st *txState) rollback(ctx context.Context) error {
	clear(st.pend)
	st.pend = st.pend[:0]
	if st.conn == nil {
		return nil
	}
	pc := st.conn.Conn()
	if pc.IsClosed() {
		return nil
	}
	if st.open != nil {
		_ = st.open.closeLocked()
	}
	if pc.PgConn().TxStatus() == 'I' && !pc.PgConn().IsBusy() {
		return nil // nothing was begun on the server
	}
	rctx, cancel := st.m.cleanupContext(ctx)
	_, err := pc.Exec(rctx, "rollback")
	cancel()
	if err == nil {
		return nil
	}
	st.destroyConn(ctx)
	return fmt.Errorf("txmanager: rollback: %w", err)
}

// destroyConn closes the connection and gives it back to the pool, which destroys it.
func (st *txState) destroyConn(ctx context.Context) {
	cctx, cancel := st.m.cleanupContext(ctx)
	_ = st.conn.Conn().Close(cctx)
	cancel()
	st.conn.Release()
	st.conn = nil
}

// cleanupContext returns a context for a ROLLBACK that must run even when ctx ended.
func (m *Manager) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.rollbackTimeout)
}

// defaultResolveTimeout bounds the resolution of a lost COMMIT's outcome.
const defaultResolveTimeout = 10 * time.Second

// defaultRollbackTimeout bounds a cleanup ROLLBACK.
const defaultRollbackTimeout = 5 * time.Second
