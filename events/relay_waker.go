package events

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// notifyWaker keeps a connection LISTENing on [NotifyChannel] and turns each
// notification into work for the workers of the partitions it names, so that the
// commit-to-publish latency is one query, not a poll interval. When the connection is
// lost, it reconnects with back-off; the workers' fallback poll covers the gap, and
// every partition is looked at after reconnecting (rows may have been committed while
// nobody listened).
type notifyWaker struct {
	pool   *pgxpool.Pool
	leases *leaseCoordinator
	log    *slog.Logger
}

// run listens until ctx ends; it calls onListen each time its LISTEN took effect.
func (n *notifyWaker) run(ctx context.Context, onListen func()) {
	bo := newBackoff()
	for {
		err := n.listenOnce(ctx, func() { bo.Reset(); onListen() })
		if ctx.Err() != nil {
			return
		}
		n.log.LogAttrs(ctx, slog.LevelWarn, "events: relay lost its LISTEN connection; polling until it is back",
			slog.Any("error", err))
		if !sleepCtx(ctx, bo.NextBackOff()) {
			return
		}
	}
}

// listenOnce takes a connection out of the pool, LISTENs and waits for notifications
// until an error or the end of ctx, then closes the connection. (Closed rather than
// given back: it needs no UNLISTEN, and its close does not outlive the waker.)
func (n *notifyWaker) listenOnce(ctx context.Context, listening func()) error {
	pc, err := n.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	listening()
	n.leases.markAllDirty()
	for {
		msg, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.notified(msg.Payload)
	}
}

// notified marks the partitions a notification names (all, if it names none) and
// wakes their workers.
func (n *notifyWaker) notified(payload string) {
	var ps []int16
	if !parseNotifyPayload(payload, func(p int) { ps = append(ps, int16(p)) }) {
		n.leases.markAllDirty()
		return
	}
	n.leases.markDirty(ps...)
}
