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
	// its leases every LeaseDuration/4 (four small statements in one round trip), reads
	// a partition only while more than half of its lease is left, and publishes what it
	// read only while more than a quarter is left. A relay that dies loses its
	// partitions after at most LeaseDuration, and the others take them over at their
	// next renewal: within 1.25 × LeaseDuration. Default 3s (takeover within 3.75s);
	// at least 500ms.
	LeaseDuration time.Duration
	// ShutdownTimeout bounds Run's return after its context ends. Run first lets the
	// workers finish and acknowledge the batches they publish; at 3/4 of the timeout it
	// stops waiting: database round trips are cancelled, and a worker still inside
	// Publish (a stuck broker, a handler that never returns) is abandoned — what it
	// publishes is not acknowledged and stays in the outbox, its goroutine ends when
	// Publish returns, and its partitions keep their lease until it expires. Default
	// 10s.
	ShutdownTimeout time.Duration
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
		c.LeaseDuration = 3 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
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
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("events: RelayConfig.ShutdownTimeout %s: must be positive", c.ShutdownTimeout))
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

	readyMu sync.Mutex
	ready   chan struct{} // closed by the current (or next) Run once it is ready

	leases   *leaseCoordinator
	counters relayCounters
}

// NewRelay returns a relay that reads the outbox through pool and publishes to pub.
// It validates cfg after filling its defaults. The relay does nothing until
// [Relay.Run]. The pool must allow Workers+1 connections for the relay to reach full
// speed; the LISTEN connection is taken out of the pool while the relay runs.
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
		ready:  make(chan struct{}),
		leases: newLeaseCoordinator(pool, cfg.ID, cfg.LeaseDuration, cfg.Workers, log),
	}, nil
}

// Running returns a channel that is closed once the relay runs: it LISTENs for
// notifications and holds the partitions it could claim in its first lease round (all
// of them when it is the only relay; with other relays, it takes its share as they
// give partitions back, within LeaseDuration/4). Events committed from then on are
// published within one round trip. Like Watermill's Router.Running, wait on it before
// relying on the relay, e.g. in a process that emits as soon as it starts:
//
//	go relay.Run(ctx)
//	<-relay.Running()
//
// After Run returned, Running returns the channel of the next Run.
func (r *Relay) Running() <-chan struct{} {
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	return r.ready
}

// ID returns the relay's ID (RelayConfig.ID or the generated one).
func (r *Relay) ID() string { return r.cfg.ID }

// Run publishes outbox rows until ctx ends, then stops and returns nil within
// RelayConfig.ShutdownTimeout: it lets the workers finish and acknowledge the batches
// in flight (with GoChannel, a Publish waits for the handlers), gives its leases back,
// and returns only after every connection it took is back in the pool. A Publish that
// outlasts the timeout is abandoned (see ShutdownTimeout): nothing it delivers is
// acknowledged, so the events stay in the outbox. No goroutine is left behind, except
// one inside such a Publish, until that returns.
//
// Start-up takes the first lease round; [Relay.Running] tells when the relay is ready.
// Database outages are logged and retried with back-off. Run returns an error only if
// the outbox tables are missing (run schema.Migrate) or the relay is already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRelayRunning
	}
	defer r.running.Store(false)
	defer func() {
		r.readyMu.Lock()
		select {
		case <-r.ready:
			r.ready = make(chan struct{})
		default:
		}
		r.readyMu.Unlock()
	}()

	if err := r.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.leases.stopping.Store(false)
	// dbCtx outlives ctx, so that what was published is acknowledged, until the
	// shutdown timeout.
	dbCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	leaseCtx, stopLeases := context.WithCancel(dbCtx)
	defer stopLeases()

	// The first lease round is part of start-up: a fresh relay publishes at once.
	bo := newBackoff()
	for {
		err := r.leases.renew(ctx)
		if err == nil {
			break
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay cannot take its leases; retrying", slog.Any("error", err))
		if !sleepCtx(ctx, bo.NextBackOff()) {
			r.stop(ctx, time.Now().Add(r.cfg.ShutdownTimeout))
			return nil
		}
	}

	listening := make(chan struct{})
	var listenOnce sync.Once
	waker := &notifyWaker{pool: r.pool, leases: r.leases, log: r.log}
	wakerDone := make(chan struct{})
	go func() {
		defer close(wakerDone)
		waker.run(ctx, func() { listenOnce.Do(func() { close(listening) }) })
	}()
	leasesDone := make(chan struct{})
	go func() {
		defer close(leasesDone)
		r.leases.runAfterFirst(leaseCtx)
	}()
	workers := make([]*worker, r.cfg.Workers)
	for id := range workers {
		w := &worker{id: id, pool: r.pool, pub: r.pub, cfg: &r.cfg, log: r.log, leases: r.leases,
			counters: &r.counters, dbCtx: dbCtx, exited: make(chan struct{})}
		workers[id] = w
		go w.run(ctx)
	}

	select {
	case <-listening:
		r.readyMu.Lock()
		close(r.ready)
		r.readyMu.Unlock()
		r.log.LogAttrs(ctx, slog.LevelInfo, "events: relay running",
			slog.Int("workers", r.cfg.Workers), slog.Int("batch_size", r.cfg.BatchSize))
	case <-ctx.Done():
	}
	<-ctx.Done()

	// Stop: the workers take nothing new, finish and acknowledge, while the leases
	// are still renewed (no partition is claimed any more).
	deadline := time.Now().Add(r.cfg.ShutdownTimeout)
	r.leases.stopping.Store(true)
	grace := time.NewTimer(r.cfg.ShutdownTimeout * 3 / 4)
	defer grace.Stop()
	timedOut := false
	for _, w := range workers {
		if timedOut {
			break
		}
		select {
		case <-w.exited:
		case <-grace.C:
			timedOut = true
		}
	}
	if timedOut {
		hardStop()
		abandoned := 0
		for _, w := range workers {
			if w.abandon() {
				abandoned++
				continue
			}
			<-w.exited
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay shutdown timed out; what was not acknowledged stays in the outbox",
			slog.Duration("shutdown_timeout", r.cfg.ShutdownTimeout), slog.Int("workers_inside_publish", abandoned))
	}
	<-wakerDone
	stopLeases()
	<-leasesDone
	r.stop(ctx, deadline)
	return nil
}

// stop gives the leases back (by the deadline, or within a quarter second past it)
// and logs the relay's counters.
func (r *Relay) stop(ctx context.Context, deadline time.Time) {
	deadline = later(deadline, time.Now().Add(250*time.Millisecond))
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	r.leases.releaseAll(sctx)
	r.log.LogAttrs(ctx, slog.LevelInfo, "events: relay stopped",
		slog.Uint64("published", r.counters.published.Load()), slog.Uint64("dead_lettered", r.counters.deadLettered.Load()))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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

// RelayProgress is what a relay did since it was created and what it holds now, as
// [Relay.Progress] returns it.
type RelayProgress struct {
	// Published, Failed and DeadLettered count the events the relay delivered, the
	// failed publish attempts, and the events it moved to uno_dead_letters.
	Published    uint64
	Failed       uint64
	DeadLettered uint64
	// Partitions is the number of partitions (leases) the relay holds now.
	Partitions int
}

// Progress returns the relay's counters and the number of leases it holds. It reads
// no table: metrics collectors call it at every collection.
func (r *Relay) Progress() RelayProgress {
	p := RelayProgress{
		Published:    r.counters.published.Load(),
		Failed:       r.counters.failed.Load(),
		DeadLettered: r.counters.deadLettered.Load(),
	}
	p.Partitions, _ = r.leases.held()
	return p
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

// withConn runs fn on a connection of pool and gives it back before returning: to the
// pool when it is healthy, else closed here. (pgxpool destroys a broken connection in
// a goroutine of its own, and Run returns only after every connection it took is
// back.)
func withConn(ctx context.Context, pool *pgxpool.Pool, fn func(*pgx.Conn) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(c.Conn())
	if conn := c.Conn(); conn.IsClosed() || conn.PgConn().IsBusy() || conn.PgConn().TxStatus() != 'I' {
		closeConn(c.Hijack())
		return err
	}
	c.Release()
	return err
}

// closeConn closes a connection taken from the pool, waiting at most a second for the
// server to hear it.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
