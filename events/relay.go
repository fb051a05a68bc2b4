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
	"github.com/jackc/pgx/v5/pgxpool"
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
// deleted from the outbox once Publish returned nil for it: delivery is at least once,
// in order per key. The package documentation tells how it works.
//
// A Relay is made of four parts, each in a file of its own: the lease coordinator
// (which partitions this relay publishes), the LISTEN/NOTIFY waker, the workers (read,
// publish, acknowledge) and the publish planner (which events go in one Publish call).
type Relay struct {
	pool *pgxpool.Pool
	pub  message.Publisher
	cfg  RelayConfig
	log  *slog.Logger

	running atomic.Bool

	leases   *leaseCoordinator
	counters relayCounters
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
	log := cfg.Logger.With(slog.String("relay", cfg.ID))
	return &Relay{
		pool:   pool,
		pub:    pub,
		cfg:    cfg,
		log:    log,
		leases: newLeaseCoordinator(pool, cfg.ID, cfg.LeaseDuration, cfg.Workers, log),
	}, nil
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
	waker := &notifyWaker{pool: r.pool, leases: r.leases, log: r.log}
	wg.Go(func() { waker.run(runCtx) })
	for id := range r.cfg.Workers {
		w := &worker{id: id, pool: r.pool, pub: r.pub, cfg: &r.cfg, log: r.log, leases: r.leases, counters: &r.counters}
		wg.Go(func() { w.run(runCtx) })
	}
	r.leases.run(runCtx)
	cancel()
	wg.Wait()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	r.leases.releaseAll(sctx)
	scancel()
	r.log.LogAttrs(ctx, slog.LevelInfo, "events: relay stopped",
		slog.Uint64("published", r.counters.published.Load()), slog.Uint64("dead_lettered", r.counters.deadLettered.Load()))
	return nil
}

// setup creates the lease rows (once for all relays), retrying while the database is
// unreachable.
func (r *Relay) setup(ctx context.Context) error {
	bo := newBackoff()
	for {
		err := r.leases.createLeases(ctx)
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
		Published:    r.counters.published.Load(),
		Failed:       r.counters.failed.Load(),
		DeadLettered: r.counters.deadLettered.Load(),
	}
	s.Partitions, s.Relays = r.leases.held()
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
