package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/txmanager"
)

// RelayConfig configures a [Relay]. Zero fields take the defaults documented on each.
type RelayConfig struct {
	// BatchSize is the most outbox rows (envelopes: the events of one transaction
	// under one partition) a worker reads, publishes and acknowledges at once.
	// Default 1000.
	BatchSize int
	// Workers is how many partitions' rows the relay publishes at the same time, each
	// worker serving a fixed share of the partitions (partition mod Workers).
	// Default 4; at most Partitions.
	Workers int
	// PollInterval is the fallback poll: every worker looks at all its partitions this
	// often even when no NOTIFY arrived (e.g. while the LISTEN connection is being
	// re-established). Notifications, not the poll, carry the normal latency.
	// Default 1s.
	PollInterval time.Duration
	// MaxAttempts is how many failed publish attempts move an event to
	// uno_dead_letters. Default 10.
	MaxAttempts int
	// RetryBackoff is the wait after the first failed attempt of an event; it doubles
	// with every further failure up to MaxRetryBackoff. While an event waits, the later
	// events of its key wait too (order); other keys flow. Default 1s.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the wait between attempts. Default 1m.
	MaxRetryBackoff time.Duration
	// LeaseDuration is how long a partition lease lasts without renewal. The relay renews
	// its leases every LeaseDuration/4 and starts a batch only while more than half of
	// the lease is left; a relay that dies loses its partitions to the others after at
	// most LeaseDuration. Default 15s; at least 500ms.
	LeaseDuration time.Duration
	// ID names the relay in uno_outbox_leases and uno_outbox_relays. It must be unique
	// among running relays. Default: host name, process ID and a random suffix.
	ID string
	// Logger receives the relay's log records. Default: slog.Default().
	Logger *slog.Logger
}

func (c *RelayConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = time.Second
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = time.Minute
		if c.MaxRetryBackoff < c.RetryBackoff {
			c.MaxRetryBackoff = c.RetryBackoff
		}
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of the configuration at once.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("events: RelayConfig.BatchSize %d: must be between 1 and 100000", c.BatchSize))
	}
	if c.Workers < 1 || c.Workers > Partitions {
		errs = append(errs, fmt.Errorf("events: RelayConfig.Workers %d: must be between 1 and %d (the number of partitions)", c.Workers, Partitions))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("events: RelayConfig.PollInterval %s: must be positive", c.PollInterval))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("events: RelayConfig.MaxAttempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("events: RelayConfig.RetryBackoff %s: must be positive", c.RetryBackoff))
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("events: RelayConfig.MaxRetryBackoff %s: must be at least RetryBackoff (%s)", c.MaxRetryBackoff, c.RetryBackoff))
	}
	if c.LeaseDuration < 500*time.Millisecond {
		errs = append(errs, fmt.Errorf("events: RelayConfig.LeaseDuration %s: must be at least 500ms", c.LeaseDuration))
	}
	if c.ID == "" {
		errs = append(errs, errors.New("events: RelayConfig.ID: must not be empty"))
	}
	return errors.Join(errs...)
}

// Relay forwards the events of the outbox to a Watermill publisher: GoChannel in process
// ([NewGoChannel]), or AMQP, NATS JetStream, Kafka, SQL... Every message carries the
// event ID as its UUID, the payload as written, and the event's metadata plus
// [MetadataTopic], [MetadataKey], [MetadataType] and [MetadataOccurredAt]. An event is
// marked delivered once Publish returned nil for it: delivery is at least once.
//
// # How it works
//
// Each outbox row, an envelope, holds the events one transaction emitted under one
// partition, a hash of their key ([PartitionOf]), in emission order. A relay
// publishes the envelopes of a partition only while it holds that partition's lease in
// uno_outbox_leases, so several relay processes can run at once: they never send rows
// of the same partition at the same time, and they share the partitions evenly (each
// takes its fair share, given the live relays registered in uno_outbox_relays, and
// gives back what exceeds it). Lease expiry is decided by the database clock; the
// holder counts its lease from before it asked for it, so it stops working on a
// partition before any other relay can take it over. A relay that dies loses its
// leases after LeaseDuration; one that stops returns them at once.
//
// Inside a relay, Workers goroutines each serve a fixed share of the held partitions.
// A worker reads a batch (envelopes in id order; per partition a prefix), publishes
// their events, each envelope from its offset delivered, with one Publish call per
// topic (or per run of a topic when a key spans topics, so that the order of each key
// is kept), and acknowledges it in the round trip that reads the next batch: DELETE of
// the envelopes all of whose events were delivered, the new offset of the partly
// delivered ones (so a retry does not publish an event twice), attempts and back-off
// of the failed ones, and the move to uno_dead_letters of an event that failed
// MaxAttempts times (its envelope then goes on past it). When a batch fails, its
// messages are published one by one to find the failing ones; the events of a key
// behind a failing event wait (in the database: an envelope in back-off holds back
// the events of its keys in later envelopes, whose other events flow), other keys go
// on.
//
// The relay is woken by NOTIFY (see [NotifyChannel]) on a connection of its own that
// it holds while running, naming the partitions written, so the commit-to-publish
// latency is one query, not a poll interval; PollInterval is the fallback.
//
// Why leases in a table rather than FOR UPDATE SKIP LOCKED or advisory locks: row
// locks cannot keep the order of a key across relays (a second relay would skip the
// locked head of a key and send its successor), and session advisory locks vanish the
// moment a connection drops, while the relay that held them may still be publishing
// what it read. A lease outlives a connection blip, expires by the database clock, and
// its holder reads a partition only while more than half of the lease is left and
// publishes what it read only while more than a quarter is left, so two relays never
// publish events of one partition at the same time unless a Publish call outlasts a lease the relay could not renew.
//
// # GoChannel
//
// With GoChannel, configure BlockPublishUntilSubscriberAck (as [NewGoChannel] does):
// then Publish returns when the handler acknowledged, a row is deleted only after its
// handler succeeded, and the order of a key holds up to the handler. Start the router
// (wait for Router.Running) before the relay, and stop the relay before the router and
// the GoChannel: GoChannel drops messages of a topic nobody subscribes to, and a
// Publish interrupted by closing the router or the GoChannel returns nil, either way
// reporting delivered a message no handler acknowledged.
type Relay struct {
	pool *pgxpool.Pool
	pub  message.Publisher
	cfg  RelayConfig
	log  *slog.Logger

	running atomic.Bool

	mu     sync.Mutex
	parts  [Partitions]partState
	relays int // live relays seen at the last lease tick
	wake   []chan struct{}

	published    atomic.Uint64
	failed       atomic.Uint64
	deadLettered atomic.Uint64
}

// partState is the relay's view of one partition, guarded by Relay.mu.
type partState struct {
	owned      bool      // the relay holds the lease
	validUntil time.Time // local deadline of the lease (earlier than the database's)
	busy       bool      // its worker has rows of it in flight or unacknowledged
	dirty      bool      // may have rows to publish
	retryAt    time.Time // a failed row becomes due then (zero: none known)
}

// NewRelay returns a relay that reads the outbox through pool and publishes to pub.
// It validates cfg after filling its defaults. The relay does nothing until
// [Relay.Run]. The pool must allow Workers+2 connections for the relay to reach full
// speed (one stays acquired for LISTEN while it runs).
func NewRelay(pool *pgxpool.Pool, pub message.Publisher, cfg RelayConfig) (*Relay, error) {
	if pool == nil {
		return nil, errors.New("events: NewRelay needs a *pgxpool.Pool, got nil")
	}
	if pub == nil {
		return nil, errors.New("events: NewRelay needs a message.Publisher, got nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{
		pool: pool,
		pub:  pub,
		cfg:  cfg,
		log:  cfg.Logger.With(slog.String("relay", cfg.ID)),
		wake: make([]chan struct{}, cfg.Workers),
	}
	for i := range r.wake {
		r.wake[i] = make(chan struct{}, 1)
	}
	return r, nil
}

// ID returns the relay's ID (RelayConfig.ID or the generated one).
func (r *Relay) ID() string { return r.cfg.ID }

// Run publishes outbox rows until ctx ends, then stops cleanly and returns nil: it
// finishes and acknowledges the batches in flight (a Publish call cannot be
// interrupted, so Run waits for it: with GoChannel, for the handlers), gives its leases
// back, and returns its LISTEN connection to the pool; no goroutine is left behind.
// Database outages are logged and retried with back-off. Run returns an error only if
// the outbox tables are missing (run schema.Migrate) or the relay is already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRelayRunning
	}
	defer r.running.Store(false)

	if err := r.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "events: relay started",
		slog.Int("workers", r.cfg.Workers), slog.Int("batch_size", r.cfg.BatchSize))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.listen(runCtx) })
	for w := range r.cfg.Workers {
		wg.Go(func() { r.work(runCtx, w) })
	}
	r.coordinate(runCtx)
	cancel()
	wg.Wait()
	r.shutdown(ctx)
	r.log.LogAttrs(ctx, slog.LevelInfo, "events: relay stopped",
		slog.Uint64("published", r.published.Load()), slog.Uint64("dead_lettered", r.deadLettered.Load()))
	return nil
}

// setup creates the lease rows (once for all relays), retrying while the database is
// unreachable.
func (r *Relay) setup(ctx context.Context) error {
	bo := newBackoff()
	for {
		_, err := r.pool.Exec(ctx, `INSERT INTO uno_outbox_leases (partition, expires_at)
SELECT g, now() FROM generate_series(0, $1::int - 1) AS g ON CONFLICT (partition) DO NOTHING`, Partitions)
		if err == nil {
			return nil
		}
		if isUndefinedTable(err) {
			return errNotMigrated(err)
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay cannot reach the outbox; retrying", slog.Any("error", err))
		if !sleepCtx(ctx, bo.NextBackOff()) {
			return ctx.Err()
		}
	}
}

// coordinate keeps the relay's membership and leases up to date until ctx ends.
func (r *Relay) coordinate(ctx context.Context) {
	period := r.cfg.LeaseDuration / 4
	bo := newBackoff()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := period
		if err := r.tick(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay cannot renew its leases; retrying", slog.Any("error", err))
			next = min(bo.NextBackOff(), period)
		} else {
			bo.Reset()
		}
		r.wakeAll()
		t.Reset(next)
	}
}

// leaseMillis is the lease duration in milliseconds, as the SQL takes it.
func (r *Relay) leaseMillis() int64 { return r.cfg.LeaseDuration.Milliseconds() }

// tick registers the relay, renews its leases, and claims or gives back partitions
// to hold its fair share.
func (r *Relay) tick(ctx context.Context) error {
	sent := time.Now()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO uno_outbox_relays (id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`, r.cfg.ID, r.leaseMillis())
	b.Queue(`DELETE FROM uno_outbox_relays WHERE expires_at < now()`)
	b.Queue(`SELECT count(*) FROM uno_outbox_relays`)
	b.Queue(`UPDATE uno_outbox_leases SET expires_at = now() + $2 * interval '1 millisecond'
WHERE owner = $1 RETURNING partition`, r.cfg.ID, r.leaseMillis())
	br := r.pool.SendBatch(ctx, b)
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
	r.mu.Lock()
	r.relays = relays
	var inDB [Partitions]bool
	for _, p := range held {
		if p >= 0 && int(p) < Partitions {
			inDB[p] = true
		}
	}
	count := 0
	for p := range r.parts {
		ps := &r.parts[p]
		switch {
		case inDB[p]:
			if !ps.owned {
				ps.dirty = true
			}
			ps.owned = true
			ps.validUntil = sent.Add(r.cfg.LeaseDuration)
			count++
		case ps.owned:
			ps.owned = false
			r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay lost the lease of a partition (not renewed in time)",
				slog.Int("partition", p))
		}
	}
	for p := Partitions - 1; p >= 0 && count > target; p-- {
		ps := &r.parts[p]
		if ps.owned && !ps.busy {
			ps.owned = false
			release = append(release, int16(p))
			count--
		}
	}
	r.mu.Unlock()

	if len(release) > 0 {
		if _, err := r.pool.Exec(ctx, `UPDATE uno_outbox_leases SET owner = NULL, expires_at = now()
WHERE owner = $1 AND partition = ANY($2)`, r.cfg.ID, release); err != nil {
			return fmt.Errorf("give back %d partitions: %w", len(release), err)
		}
		r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay gave partitions back to share the work",
			slog.Any("partitions", release), slog.Int("relays", relays))
	}
	if count < target {
		sent := time.Now()
		rows, err := r.pool.Query(ctx, `WITH c AS (
	SELECT partition FROM uno_outbox_leases
	WHERE owner IS NULL OR expires_at < now()
	ORDER BY partition
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE uno_outbox_leases l SET owner = $1, expires_at = now() + $3 * interval '1 millisecond'
FROM c WHERE l.partition = c.partition
RETURNING l.partition`, r.cfg.ID, target-count, r.leaseMillis())
		if err != nil {
			return fmt.Errorf("claim partitions: %w", err)
		}
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[int16])
		if err != nil {
			return fmt.Errorf("claim partitions: %w", err)
		}
		if len(claimed) > 0 {
			r.mu.Lock()
			for _, p := range claimed {
				ps := &r.parts[p]
				ps.owned, ps.dirty, ps.validUntil = true, true, sent.Add(r.cfg.LeaseDuration)
			}
			r.mu.Unlock()
			r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay claimed partitions",
				slog.Any("partitions", claimed), slog.Int("relays", relays))
		}
	}
	return nil
}

// shutdown gives the leases back and unregisters the relay, so that other relays take
// over at once. It runs after the workers stopped.
func (r *Relay) shutdown(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`UPDATE uno_outbox_leases SET owner = NULL, expires_at = now() WHERE owner = $1`, r.cfg.ID)
	b.Queue(`DELETE FROM uno_outbox_relays WHERE id = $1`, r.cfg.ID)
	if err := r.pool.SendBatch(ctx, b).Close(); err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay could not give its leases back; they expire by themselves",
			slog.Any("error", err), slog.Duration("lease", r.cfg.LeaseDuration))
	}
	r.mu.Lock()
	r.parts = [Partitions]partState{}
	r.relays = 0
	r.mu.Unlock()
}

// wakeAll nudges every worker.
func (r *Relay) wakeAll() {
	for _, ch := range r.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// markDirty marks partition p as possibly holding rows and wakes its worker.
func (r *Relay) markDirty(ps ...int16) {
	r.mu.Lock()
	for _, p := range ps {
		r.parts[p].dirty = true
	}
	r.mu.Unlock()
	for _, p := range ps {
		select {
		case r.wake[int(p)%r.cfg.Workers] <- struct{}{}:
		default:
		}
	}
}

// markAllDirty marks every partition as possibly holding rows and wakes all workers.
func (r *Relay) markAllDirty() {
	r.mu.Lock()
	for p := range r.parts {
		r.parts[p].dirty = true
	}
	r.mu.Unlock()
	r.wakeAll()
}

// Lag is the state of the outbox.
type Lag struct {
	// Pending is the number of events not yet delivered (retrying ones included).
	Pending int64
	// Retrying is the number of pending events in envelopes (outbox rows) that failed
	// at least once.
	Retrying int64
	// Oldest is the age of the oldest pending event (0 when none), by the database
	// clock: since its transaction started.
	Oldest time.Duration
	// DeadLetters is the number of events in uno_dead_letters.
	DeadLetters int64
}

// ReadLag reads the state of the outbox through q (a pool, or a transaction).
func ReadLag(ctx context.Context, q txmanager.Querier) (Lag, error) {
	var l Lag
	var oldestMicros int64
	err := q.QueryRow(ctx, `SELECT
	COALESCE(sum(count - delivered), 0)::int8,
	COALESCE(sum(count - delivered) FILTER (WHERE attempts > 0), 0)::int8,
	COALESCE((extract(epoch FROM now() - min(created_at)) * 1000000)::int8, 0),
	(SELECT count(*) FROM uno_dead_letters)
FROM uno_outbox`).Scan(&l.Pending, &l.Retrying, &oldestMicros, &l.DeadLetters)
	if err != nil {
		if isUndefinedTable(err) {
			return Lag{}, errNotMigrated(err)
		}
		return Lag{}, fmt.Errorf("events: read the outbox lag: %w", err)
	}
	l.Oldest = time.Duration(max(oldestMicros, 0)) * time.Microsecond
	return l, nil
}

// RelayStats is the state of the outbox and of one relay.
type RelayStats struct {
	Lag
	// Published, Failed and DeadLettered count, since the relay was created, the events
	// it delivered, the failed publish attempts, and the events it moved to
	// uno_dead_letters.
	Published    uint64
	Failed       uint64
	DeadLettered uint64
	// Partitions is the number of partitions the relay holds now.
	Partitions int
	// Relays is the number of live relays at the relay's last lease renewal.
	Relays int
}

// Lag reads the state of the outbox: pending events and the age of the oldest.
func (r *Relay) Lag(ctx context.Context) (Lag, error) { return ReadLag(ctx, r.pool) }

// Stats reads the state of the outbox and adds the relay's counters.
func (r *Relay) Stats(ctx context.Context) (RelayStats, error) {
	l, err := ReadLag(ctx, r.pool)
	if err != nil {
		return RelayStats{}, err
	}
	s := RelayStats{
		Lag:          l,
		Published:    r.published.Load(),
		Failed:       r.failed.Load(),
		DeadLettered: r.deadLettered.Load(),
	}
	r.mu.Lock()
	for p := range r.parts {
		if r.parts[p].owned {
			s.Partitions++
		}
	}
	s.Relays = r.relays
	r.mu.Unlock()
	return s, nil
}

// newBackoff is the back-off of reconnections and failed cycles: 100ms doubling to
// 10s, with jitter, forever.
func newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
