package events

import (
	"context"
	"log/slog"
	"time"
)

// listen keeps a connection LISTENing on NotifyChannel while ctx lives and turns each
// notification into work for the workers of the partitions it names. When the
// connection is lost, it reconnects with back-off; the fallback poll covers the gap and
// every partition is looked at after reconnecting.
func (r *Relay) listen(ctx context.Context) {
	bo := newBackoff()
	for {
		err := r.listenOnce(ctx, bo.Reset)
		if ctx.Err() != nil {
			return
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay lost its LISTEN connection; polling until it is back",
			slog.Any("error", err))
		if !sleepCtx(ctx, bo.NextBackOff()) {
			return
		}
	}
}

// listenOnce acquires a connection, LISTENs and waits for notifications until an error
// or the end of ctx. It gives the connection back to the pool without listeners, or
// closes it when it cannot UNLISTEN.
func (r *Relay) listenOnce(ctx context.Context, listening func()) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(cctx, "UNLISTEN *"); err != nil {
			_ = conn.Conn().Close(cctx) // a closed connection is discarded by Release
		}
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	listening()
	// Rows may have been committed while nobody listened.
	r.markAllDirty()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		r.notified(n.Payload)
	}
}

// notified marks the partitions a notification names (all, if it names none) and
// wakes their workers.
func (r *Relay) notified(payload string) {
	var ps [Partitions]bool
	if !parseNotifyPayload(payload, func(p int) { ps[p] = true }) {
		r.markAllDirty()
		return
	}
	var wake [Partitions]bool
	r.mu.Lock()
	for p, ok := range ps {
		if ok {
			r.parts[p].dirty = true
			wake[p%r.cfg.Workers] = true
		}
	}
	r.mu.Unlock()
	for w, ok := range wake[:r.cfg.Workers] {
		if ok {
			select {
			case r.wake[w] <- struct{}{}:
			default:
			}
		}
	}
}
