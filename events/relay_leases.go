package events

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// partitionState is a relay's view of one partition, guarded by leaseCoordinator.mu.
type partitionState struct {
	owned      bool      // the relay holds the lease
	validUntil time.Time // local deadline of the lease (earlier than the database's)
	busy       bool      // its worker has envelopes of it in flight or unacknowledged
	dirty      bool      // may have envelopes to publish
	retryAt    time.Time // an envelope in back-off becomes due then (zero: none known)
}

// leaseCoordinator holds a relay's partition leases in uno_outbox_leases and its
// membership in uno_outbox_relays, and keeps the relay's table of partitions: which it
// holds and until when, which may have envelopes (dirty), which its workers are busy
// with, and when a retry is due. Workers take due partitions from it; the waker marks
// partitions dirty. Worker w serves the partitions p with p mod workers == w.
//
// Lease expiry is decided by the database clock; the coordinator counts a lease from
// before it asked for it, so its relay stops working on a partition before any other
// relay can take it over.
type leaseCoordinator struct {
	pool    *pgxpool.Pool
	relayID string
	lease   time.Duration
	log     *slog.Logger

	// signals wakes worker w (buffered, one pending signal).
	signals []chan struct{}

	// stopping is set when the relay stops: renewals then claim no partition.
	stopping atomic.Bool

	mu     sync.Mutex
	parts  [Partitions]partitionState
	relays int // live relays seen at the last renewal
}

func newLeaseCoordinator(pool *pgxpool.Pool, relayID string, lease time.Duration, workers int, log *slog.Logger) *leaseCoordinator {
	c := &leaseCoordinator{pool: pool, relayID: relayID, lease: lease, log: log, signals: make([]chan struct{}, workers)}
	for i := range c.signals {
		c.signals[i] = make(chan struct{}, 1)
	}
	return c
}

// workers is the number of workers the partitions are spread over.
func (c *leaseCoordinator) workers() int { return len(c.signals) }

// leaseMillis is the lease duration in milliseconds, as the SQL takes it.
func (c *leaseCoordinator) leaseMillis() int64 { return c.lease.Milliseconds() }

// createLeases creates the lease rows (once for all relays).
func (c *leaseCoordinator) createLeases(ctx context.Context) error {
	return withConn(ctx, c.pool, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, createLeasesSQL, Partitions)
		return err
	})
}

// runAfterFirst renews the membership and leases every lease/4 until ctx ends, and
// wakes the workers after each renewal. The first renewal, which Run made, is due one
// period after start.
func (c *leaseCoordinator) runAfterFirst(ctx context.Context) {
	period := c.lease / 4
	bo := newBackoff()
	c.wakeAll()
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := period
		if err := c.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "events: relay cannot renew its leases; retrying", slog.Any("error", err))
			next = min(bo.NextBackOff(), period)
		} else {
			bo.Reset()
		}
		c.wakeAll()
		t.Reset(next)
	}
}

// renew registers the relay, renews its leases, and claims or gives back partitions
// to hold its fair share (only gives back while the relay stops).
func (c *leaseCoordinator) renew(ctx context.Context) error {
	return withConn(ctx, c.pool, func(conn *pgx.Conn) error { return c.renewOn(ctx, conn) })
}

func (c *leaseCoordinator) renewOn(ctx context.Context, conn *pgx.Conn) error {
	sent := time.Now()
	b := &pgx.Batch{}
	b.Queue(registerRelaySQL, c.relayID, c.leaseMillis())
	b.Queue(forgetDeadRelaysSQL)
	b.Queue(countRelaysSQL)
	b.Queue(renewLeasesSQL, c.relayID, c.leaseMillis())
	br := conn.SendBatch(ctx, b)
	var relays int
	var held []int16
	err := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&relays); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		held, err = pgx.CollectRows(rows, pgx.RowTo[int16])
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("renew leases: %w", err)
	}

	relays = max(relays, 1)
	target := (Partitions + relays - 1) / relays
	var release []int16
	c.mu.Lock()
	c.relays = relays
	var inDB [Partitions]bool
	for _, p := range held {
		if p >= 0 && int(p) < Partitions {
			inDB[p] = true
		}
	}
	count := 0
	for p := range c.parts {
		ps := &c.parts[p]
		switch {
		case inDB[p]:
			if !ps.owned {
				ps.dirty = true
			}
			ps.owned = true
			ps.validUntil = sent.Add(c.lease)
			count++
		case ps.owned:
			ps.owned = false
			c.log.LogAttrs(ctx, slog.LevelWarn, "events: relay lost the lease of a partition (not renewed in time)",
				slog.Int("partition", p))
		}
	}
	for p := Partitions - 1; p >= 0 && count > target; p-- {
		ps := &c.parts[p]
		if ps.owned && !ps.busy {
			ps.owned = false
			release = append(release, int16(p))
			count--
		}
	}
	c.mu.Unlock()

	if len(release) > 0 {
		if _, err := conn.Exec(ctx, releaseLeasesSQL, c.relayID, release); err != nil {
			return fmt.Errorf("give back %d partitions: %w", len(release), err)
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "events: relay gave partitions back to share the work",
			slog.Any("partitions", release), slog.Int("relays", relays))
	}
	if count < target && !c.stopping.Load() {
		sent := time.Now()
		rows, err := conn.Query(ctx, claimLeasesSQL, c.relayID, target-count, c.leaseMillis())
		if err != nil {
			return fmt.Errorf("claim partitions: %w", err)
		}
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[int16])
		if err != nil {
			return fmt.Errorf("claim partitions: %w", err)
		}
		if len(claimed) > 0 {
			c.mu.Lock()
			for _, p := range claimed {
				ps := &c.parts[p]
				ps.owned, ps.dirty, ps.validUntil = true, true, sent.Add(c.lease)
			}
			c.mu.Unlock()
			c.log.LogAttrs(ctx, slog.LevelDebug, "events: relay claimed partitions",
				slog.Any("partitions", claimed), slog.Int("relays", relays))
		}
	}
	return nil
}

// releaseAll gives back the leases of every partition no worker is busy with and
// unregisters the relay, so that other relays take over at once; then it forgets the
// table. A partition still busy (a worker abandoned inside Publish) keeps its lease
// until it expires, so that no other relay publishes it while that Publish may still
// deliver.
func (c *leaseCoordinator) releaseAll(ctx context.Context) {
	var idle []int16
	c.mu.Lock()
	for p := range c.parts {
		if !c.parts[p].busy {
			idle = append(idle, int16(p))
		}
	}
	c.mu.Unlock()
	b := &pgx.Batch{}
	b.Queue(releaseLeasesSQL, c.relayID, idle)
	b.Queue(unregisterRelaySQL, c.relayID)
	err := withConn(ctx, c.pool, func(conn *pgx.Conn) error { return conn.SendBatch(ctx, b).Close() })
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "events: relay could not give its leases back; they expire by themselves",
			slog.Any("error", err), slog.Duration("lease", c.lease))
	}
	c.mu.Lock()
	c.parts = [Partitions]partitionState{}
	c.relays = 0
	c.mu.Unlock()
}

// wake nudges worker w.
func (c *leaseCoordinator) wake(w int) {
	select {
	case c.signals[w] <- struct{}{}:
	default:
	}
}

// wakeAll nudges every worker.
func (c *leaseCoordinator) wakeAll() {
	for w := range c.signals {
		c.wake(w)
	}
}

// markDirty marks the partitions ps as possibly holding envelopes and wakes their
// workers.
func (c *leaseCoordinator) markDirty(ps ...int16) {
	var wake [Partitions]bool
	c.mu.Lock()
	for _, p := range ps {
		c.parts[p].dirty = true
		wake[int(p)%c.workers()] = true
	}
	c.mu.Unlock()
	for w, ok := range wake[:c.workers()] {
		if ok {
			c.wake(w)
		}
	}
}

// markAllDirty marks every partition as possibly holding envelopes and wakes all
// workers.
func (c *leaseCoordinator) markAllDirty() {
	c.mu.Lock()
	for p := range c.parts {
		c.parts[p].dirty = true
	}
	c.mu.Unlock()
	c.wakeAll()
}

// markWorkerDirty marks all partitions of worker w as possibly holding envelopes.
func (c *leaseCoordinator) markWorkerDirty(w int) {
	c.mu.Lock()
	for p := w; p < Partitions; p += c.workers() {
		c.parts[p].dirty = true
	}
	c.mu.Unlock()
}

// nextRetry returns the earliest known due time of an envelope in back-off in worker
// w's partitions (zero: none).
func (c *leaseCoordinator) nextRetry(w int) time.Time {
	var due time.Time
	c.mu.Lock()
	for p := w; p < Partitions; p += c.workers() {
		ps := &c.parts[p]
		if ps.owned && !ps.retryAt.IsZero() && (due.IsZero() || ps.retryAt.Before(due)) {
			due = ps.retryAt
		}
	}
	c.mu.Unlock()
	return due
}

// setRetries records, for each partition of watch, in how long its earliest envelope
// in back-off is due (due[p]; zero: none).
func (c *leaseCoordinator) setRetries(watch []int16, due *[Partitions]time.Duration) {
	now := time.Now()
	c.mu.Lock()
	for _, p := range watch {
		if d := due[p]; d > 0 {
			c.parts[p].retryAt = now.Add(d)
		} else {
			c.parts[p].retryAt = time.Time{}
		}
	}
	c.mu.Unlock()
}

// take returns worker w's partitions that are due for a read, and marks them busy.
// A partition whose lease has less than half its duration left is skipped until the
// lease is renewed.
func (c *leaseCoordinator) take(w int) []int16 {
	now := time.Now()
	minLeft := c.lease / 2
	var out []int16
	c.mu.Lock()
	for p := w; p < Partitions; p += c.workers() {
		ps := &c.parts[p]
		if !ps.owned || ps.validUntil.Sub(now) < minLeft {
			continue
		}
		retryDue := !ps.retryAt.IsZero() && !now.Before(ps.retryAt)
		if !ps.dirty && !retryDue {
			continue
		}
		if retryDue {
			ps.retryAt = time.Time{}
		}
		ps.dirty, ps.busy = false, true
		out = append(out, int16(p))
	}
	c.mu.Unlock()
	return out
}

// unbusy clears the busy mark of the partitions in held that are not in keep.
func (c *leaseCoordinator) unbusy(held, keep []int16) {
	if len(held) == 0 {
		return
	}
	c.mu.Lock()
	for _, p := range held {
		if !slices.Contains(keep, p) {
			c.parts[p].busy = false
		}
	}
	c.mu.Unlock()
}

// stillLeased keeps the envelopes of partitions whose lease has at least a quarter of
// its duration left, and marks the others for a new read once the lease is renewed
// (the read was slow, or renewals failed: another relay may take them over soon, so
// they are not published from here).
func (c *leaseCoordinator) stillLeased(rows []outboxRow) []outboxRow {
	now := time.Now()
	minLeft := c.lease / 4
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := rows[:0]
	for _, x := range rows {
		ps := &c.parts[x.partition]
		if ps.owned && ps.validUntil.Sub(now) >= minLeft {
			kept = append(kept, x)
		} else {
			ps.dirty = true
		}
	}
	return kept
}

// held returns the number of partitions the relay holds and the live relays at the
// last renewal.
func (c *leaseCoordinator) held() (partitions, relays int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.parts {
		if c.parts[p].owned {
			partitions++
		}
	}
	return partitions, c.relays
}

// markDirtyQuiet marks the partitions ps as possibly holding envelopes without waking
// anyone: their worker, which calls it, reads them next.
func (c *leaseCoordinator) markDirtyQuiet(ps []int16) {
	c.mu.Lock()
	for _, p := range ps {
		c.parts[p].dirty = true
	}
	c.mu.Unlock()
}
