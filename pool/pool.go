package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/internal/redact"
)

// State is the health of a pool as seen by its monitor.
type State int32

const (
	// StateUnknown is the zero State: nothing has been checked yet.
	StateUnknown State = iota
	// StateHealthy: the last probe reached the server.
	StateHealthy
	// StateUnhealthy: a probe could not reach the server; the monitor is reconnecting.
	StateUnhealthy
)

// String returns "unknown", "healthy" or "unhealthy".
func (s State) String() string {
	switch s {
	case StateHealthy:
		return "healthy"
	case StateUnhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// Stats is a snapshot of a pool: pgxpool's counters and the pool's own.
type Stats struct {
	State           State     // current health
	LastStateChange time.Time // when State last changed (zero if it never did)
	LastError       string    // the cause of the last transition to unhealthy, password removed

	MaxConns          int32 // the pool's size
	TotalConns        int32 // open connections: idle + acquired + being opened
	IdleConns         int32
	AcquiredConns     int32
	ConstructingConns int32

	AcquireCount         int64         // successful acquisitions
	CanceledAcquireCount int64         // acquisitions ended by their context (including timeouts)
	EmptyAcquireCount    int64         // acquisitions that had to wait for or open a connection
	AcquireDuration      time.Duration // total time spent in successful acquisitions
	EmptyAcquireWaitTime time.Duration // total time successful acquisitions waited on an empty pool

	NewConns             int64 // connections opened
	MaxLifetimeDestroyed int64 // connections closed because they reached MaxConnLifetime
	MaxIdleDestroyed     int64 // connections closed because they were idle too long

	AcquireTimeouts      int64 // acquisitions that gave up after Config.AcquireTimeout
	BrokenConnsDiscarded int64 // broken connections found and discarded
	Reconnects           int64 // recoveries from StateUnhealthy to StateHealthy
	// Resets counts the times the monitor dropped every idle connection because a probe
	// of the server failed. Broken connections alone never cause one.
	Resets int64
}

// Pool is a pgxpool.Pool with validation of idle connections, an acquire timeout, a
// health monitor and reconnection with backoff. It is safe for concurrent use.
type Pool struct {
	pgx    *pgxpool.Pool
	cfg    Config
	logger *slog.Logger
	secret string      // the password, removed from logged and returned errors
	target []slog.Attr // host, database: log attributes
	hosts  string      // host:port of each server, comma-separated
	user   string
	db     string

	mu        sync.Mutex
	state     State
	changedAt time.Time
	lastErr   string

	acquireTimeouts atomic.Int64
	brokenConns     atomic.Int64
	reconnects      atomic.Int64
	resets          atomic.Int64

	probeConfig *pgx.ConnConfig // connects the monitor's probe outside the pool

	wake        chan struct{} // a broken connection was discarded
	closing     atomic.Bool
	stopMonitor context.CancelFunc
	monitorDone sync.WaitGroup
	closeOnce   sync.Once
}

// New builds a pool from pgxConfig (which it copies and does not modify) and cfg, then
// waits until a connection to the server works, retrying with cfg.Reconnect's backoff
// until ctx ends. On failure it returns a [*ConnectError] wrapping the last cause.
// Authentication failures and a missing database are not retried.
//
// New takes over pgxConfig's ShouldPing and, when cfg.ValidationTimeout is set, its
// PingTimeout; it wraps (and keeps calling) BeforeClose and ConnConfig.Tracer.
func New(ctx context.Context, pgxConfig *pgxpool.Config, cfg Config) (*Pool, error) {
	if pgxConfig == nil {
		return nil, errors.New("pool: nil *pgxpool.Config; build one with pgxpool.ParseConfig")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc := pgxConfig.Copy()
	p := &Pool{
		cfg:    cfg,
		logger: cfg.Logger,
		secret: pc.ConnConfig.Password,
		hosts:  serverAddresses(pc.ConnConfig),
		user:   pc.ConnConfig.User,
		db:     pc.ConnConfig.Database,
		target: []slog.Attr{
			slog.String("host", serverAddresses(pc.ConnConfig)),
			slog.String("database", pc.ConnConfig.Database),
		},
		wake: make(chan struct{}, 1),
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}

	threshold := cfg.IdleValidationThreshold
	pc.ShouldPing = func(_ context.Context, sp pgxpool.ShouldPingParams) bool {
		return sp.IdleDuration >= threshold
	}
	if cfg.ValidationTimeout > 0 {
		pc.PingTimeout = cfg.ValidationTimeout
	}
	beforeClose := pc.BeforeClose
	pc.BeforeClose = func(c *pgx.Conn) {
		if beforeClose != nil {
			beforeClose(c)
		}
		// A connection that is already closed when the pool destroys it was found
		// broken: a failed validation ping, or an error that killed it while in use.
		if c.IsClosed() && !p.closing.Load() {
			p.brokenConns.Add(1)
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
	p.probeConfig = pc.ConnConfig.Copy()
	pc.ConnConfig.Tracer = &tracer{inner: pc.ConnConfig.Tracer, p: p}

	pp, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", redact.Error(err, p.secret))
	}
	p.pgx = pp
	if err := p.connect(ctx); err != nil {
		p.closing.Store(true)
		pp.Close()
		return nil, err
	}
	p.state, p.changedAt = StateHealthy, time.Now()

	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopMonitor = cancel
	if cfg.HealthCheckInterval > 0 {
		p.monitorDone.Add(1)
		go p.monitor(mctx)
	}
	return p, nil
}

// errRetryTimeout ends New's retries after Config.ConnectRetryTimeout.
var errRetryTimeout = errors.New("pool: connect retry timeout")

// connect waits until a connection works, with backoff, until ctx ends or, when ctx
// has no deadline, until Config.ConnectRetryTimeout has passed.
func (p *Pool) connect(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok && p.cfg.ConnectRetryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, p.cfg.ConnectRetryTimeout, errRetryTimeout)
		defer cancel()
	}
	attempts := 0
	var last error
	op := func() error {
		attempts++
		err := p.ping(ctx)
		if err == nil {
			return nil
		}
		// An attempt cut short by the end of ctx says less than the failure before it.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		if permanent(err) {
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, next time.Duration) {
		p.logger.LogAttrs(ctx, slog.LevelWarn, "pool: cannot connect to PostgreSQL yet; retrying",
			append(p.targetAttrs(),
				slog.Int("attempt", attempts),
				slog.Duration("retry_in", next),
				slog.String("error", redact.Error(err, p.secret).Error()))...)
	}
	err := backoff.RetryNotify(op, backoff.WithContext(p.cfg.newBackOff(), ctx), notify)
	if err == nil {
		p.logger.LogAttrs(ctx, slog.LevelDebug, "pool: connected", append(p.targetAttrs(), slog.Int("attempts", attempts))...)
		return nil
	}
	if last == nil {
		last = err
	}
	ce := &ConnectError{
		Host: p.hosts, Database: p.db, User: p.user,
		Attempts: attempts, Err: redact.Error(last, p.secret),
	}
	if context.Cause(ctx) == errRetryTimeout {
		ce.GaveUpAfter = p.cfg.ConnectRetryTimeout
	}
	return ce
}

// serverAddresses lists the servers of cc as host:port, in the order pgx tries them.
func serverAddresses(cc *pgx.ConnConfig) string {
	addrs := []string{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	for _, fb := range cc.Fallbacks {
		if a := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return strings.Join(addrs, ",")
}

func (p *Pool) targetAttrs() []slog.Attr {
	return append(make([]slog.Attr, 0, len(p.target)+3), p.target...)
}

// permanent reports whether retrying cannot help: the server rejected the credentials
// (class 28) or the database does not exist (3D000).
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "3D000" || (len(pgErr.Code) == 5 && pgErr.Code[:2] == "28")
}

// Pgx returns the underlying pgxpool.Pool. Acquisitions made through it (Exec, Query,
// Begin, Acquire, ...) get the same validation and acquire timeout; its own Acquire
// returns context.DeadlineExceeded on timeout where [Pool.Acquire] returns an
// [*AcquireTimeoutError].
func (p *Pool) Pgx() *pgxpool.Pool { return p.pgx }

// Acquire returns a connection, validated if it was idle for longer than
// Config.IdleValidationThreshold. It waits at most Config.AcquireTimeout and never
// longer than ctx allows: on timeout the error matches [ErrAcquireTimeout]; when ctx
// ends first it is ctx's error. The caller must Release the connection.
func (p *Pool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if p.closing.Load() {
		return nil, ErrClosed
	}
	actx := ctx
	if d := p.cfg.AcquireTimeout; d > 0 {
		tctx, cancel := context.WithTimeoutCause(ctx, d, errAcquireTimedOut)
		defer cancel()
		actx = context.WithValue(tctx, timeoutSetKey{}, true)
	}
	c, err := p.pgx.Acquire(actx)
	if err == nil {
		return c, nil
	}
	if context.Cause(actx) == errAcquireTimedOut {
		p.acquireTimedOut()
		st := p.pgx.Stat()
		return nil, &AcquireTimeoutError{
			Timeout:       p.cfg.AcquireTimeout,
			MaxConns:      st.MaxConns(),
			AcquiredConns: st.AcquiredConns(),
			IdleConns:     st.IdleConns(),
		}
	}
	if p.closing.Load() {
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("pool: acquire a connection: %w", redact.Error(err, p.secret))
}

// AcquireFrom acquires a connection from pp as pp.Acquire does; for a pgxpool.Pool of a
// [Pool] (built by [New], as [Pool.Pgx] returns it) the acquire timeout applies and,
// when it passes, the error is an [*AcquireTimeoutError] matching [ErrAcquireTimeout],
// as with [Pool.Acquire]. Code that holds only the *pgxpool.Pool (a transaction
// manager, for instance) uses it to report exhaustion with the pool's typed error.
func AcquireFrom(ctx context.Context, pp *pgxpool.Pool) (*pgxpool.Conn, error) {
	c, err := pp.Acquire(ctx)
	if err == nil {
		return c, nil
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// Not the caller's deadline: the acquire timeout the tracer set. (Looking the
		// Pool up copies pp's configuration, so it is done on this path only.)
		if t, ok := pp.Config().ConnConfig.Tracer.(*tracer); ok {
			st := pp.Stat()
			return nil, &AcquireTimeoutError{
				Timeout:       t.p.cfg.AcquireTimeout,
				MaxConns:      st.MaxConns(),
				AcquiredConns: st.AcquiredConns(),
				IdleConns:     st.IdleConns(),
			}
		}
	}
	return nil, err
}

// Ping acquires a connection and makes one round trip to the server.
func (p *Pool) Ping(ctx context.Context) error {
	if p.closing.Load() {
		return ErrClosed
	}
	return p.ping(ctx)
}

func (p *Pool) ping(ctx context.Context) error {
	c, err := p.pgx.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return c.Ping(ctx)
}

// State returns the pool's current health.
func (p *Pool) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	st := p.pgx.Stat()
	p.mu.Lock()
	s := Stats{State: p.state, LastStateChange: p.changedAt, LastError: p.lastErr}
	p.mu.Unlock()
	s.MaxConns = st.MaxConns()
	s.TotalConns = st.TotalConns()
	s.IdleConns = st.IdleConns()
	s.AcquiredConns = st.AcquiredConns()
	s.ConstructingConns = st.ConstructingConns()
	s.AcquireCount = st.AcquireCount()
	s.CanceledAcquireCount = st.CanceledAcquireCount()
	s.EmptyAcquireCount = st.EmptyAcquireCount()
	s.AcquireDuration = st.AcquireDuration()
	s.EmptyAcquireWaitTime = st.EmptyAcquireWaitTime()
	s.NewConns = st.NewConnsCount()
	s.MaxLifetimeDestroyed = st.MaxLifetimeDestroyCount()
	s.MaxIdleDestroyed = st.MaxIdleDestroyCount()
	s.AcquireTimeouts = p.acquireTimeouts.Load()
	s.BrokenConnsDiscarded = p.brokenConns.Load()
	s.Reconnects = p.reconnects.Load()
	s.Resets = p.resets.Load()
	return s
}

// Close stops the monitor and closes every connection, waiting for acquired ones to be
// released. It is safe to call more than once.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		p.stopMonitor()
		p.monitorDone.Wait()
		p.pgx.Close()
	})
}

// String describes the pool without its password.
func (p *Pool) String() string {
	cc := p.pgx.Config().ConnConfig
	return "pool.Pool{" + net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database + "}"
}

// Format prints [Pool.String] for every verb, so no formatting of a Pool reveals the
// password held by its pgx configuration.
func (p *Pool) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

func (p *Pool) acquireTimedOut() {
	p.acquireTimeouts.Add(1)
	st := p.pgx.Stat()
	p.logger.LogAttrs(context.Background(), slog.LevelWarn, "pool: acquire timed out",
		append(p.targetAttrs(),
			slog.Duration("timeout", p.cfg.AcquireTimeout),
			slog.Int("max_conns", int(st.MaxConns())),
			slog.Int("acquired_conns", int(st.AcquiredConns())))...)
}

// setState records a transition and reports it to the logger and the callback.
func (p *Pool) setState(ctx context.Context, to State, cause error) {
	p.mu.Lock()
	from := p.state
	if from == to {
		p.mu.Unlock()
		return
	}
	since := p.changedAt
	p.state, p.changedAt = to, time.Now()
	if cause != nil {
		p.lastErr = redact.Error(cause, p.secret).Error()
	}
	p.mu.Unlock()

	switch to {
	case StateUnhealthy:
		msg := "<nil>"
		if cause != nil {
			msg = redact.Error(cause, p.secret).Error()
		}
		p.logger.LogAttrs(ctx, slog.LevelWarn, "pool: unhealthy: connection to PostgreSQL lost; reconnecting",
			append(p.targetAttrs(), slog.String("error", msg))...)
	case StateHealthy:
		if from == StateUnhealthy {
			p.reconnects.Add(1)
		}
		p.logger.LogAttrs(ctx, slog.LevelInfo, "pool: healthy: connected to PostgreSQL again",
			append(p.targetAttrs(), slog.Duration("down_for", time.Since(since)))...)
	}
	if p.cfg.OnStateChange != nil {
		p.cfg.OnStateChange(to)
	}
}

// monitor probes the server every HealthCheckInterval, and at once when a broken
// connection was discarded. A discarded connection alone is no outage: a cancelled
// query, a connection pgx closed after an error, a backend someone terminated each cost
// only that connection, which the pool replaces. Only when the probe fails too does the
// monitor mark the pool unhealthy, drop the idle connections (after an outage they are
// all suspect) and reconnect with backoff.
//
// The probe that follows a discarded connection only pings an idle connection; when none
// is idle it leaves the verdict to the next periodic probe rather than open a connection
// of its own: on a busy pool whose statements are cancelled now and then, each such
// wake-up would cost the server one more backend.
func (p *Pool) monitor(ctx context.Context) {
	defer p.monitorDone.Done()
	ticker := time.NewTicker(p.cfg.HealthCheckInterval)
	defer ticker.Stop()
	for {
		woken := false
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-p.wake:
			woken = true
		}
		err := p.probe(ctx, woken)
		if ctx.Err() != nil {
			return
		}
		if err == errNoIdleConn {
			continue
		}
		if err == nil {
			p.setState(ctx, StateHealthy, nil)
			continue
		}
		p.setState(ctx, StateUnhealthy, err)
		p.resets.Add(1)
		p.pgx.Reset()
		if !p.reconnect(ctx) {
			if ctx.Err() != nil {
				return
			}
			continue // the backoff policy gave up; try again at the next tick
		}
		select {
		case <-p.wake:
		default:
		}
		p.setState(ctx, StateHealthy, nil)
	}
}

// reconnect probes with backoff until a probe passes; false if it never did.
func (p *Pool) reconnect(ctx context.Context) bool {
	attempt := 0
	notify := func(err error, next time.Duration) {
		attempt++
		p.logger.LogAttrs(ctx, slog.LevelDebug, "pool: reconnect attempt failed",
			append(p.targetAttrs(),
				slog.Int("attempt", attempt),
				slog.Duration("retry_in", next),
				slog.String("error", redact.Error(err, p.secret).Error()))...)
	}
	err := backoff.RetryNotify(func() error { return p.probe(ctx, false) }, backoff.WithContext(p.cfg.newBackOff(), ctx), notify)
	return err == nil
}

// errNoIdleConn is the verdict of a probe with idleOnly set that found no idle
// connection: none, the server was not asked.
var errNoIdleConn = errors.New("pool: no idle connection to probe")

// probe reports whether the server answers. It pings one idle connection (the others
// go straight back: the probe never keeps connections from the application for longer
// than a round trip on one of them), closing it if the ping fails so that releasing it
// discards it; idle connections are validated when handed out anyway. With no idle
// connection, or one that did not answer, it asks the server on a connection of its own,
// outside the pool, so that a busy pool neither blocks the probe nor counts as an outage
// — except that with idleOnly set and no idle connection it returns errNoIdleConn
// without asking the server.
//
// Each step has its own bound (the longest of ValidationTimeout, HealthCheckInterval and
// one second): a server slow to answer is not an outage, and resetting the pool would
// only add connections to its load. A server that is down refuses the connection at
// once.
func (p *Pool) probe(ctx context.Context, idleOnly bool) error {
	bound := max(p.cfg.ValidationTimeout, p.cfg.HealthCheckInterval, time.Second)
	conns := p.pgx.AcquireAllIdle(ctx)
	if len(conns) == 0 && idleOnly {
		return errNoIdleConn
	}
	if len(conns) > 0 {
		for _, c := range conns[1:] {
			c.Release()
		}
		c := conns[0]
		pctx, cancel := context.WithTimeout(ctx, bound)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Second)
			_ = c.Conn().Close(closeCtx)
			cancelClose()
		}
		c.Release()
		if err == nil {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, p.probeConfig)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancelClose()
	}()
	return conn.Ping(ctx)
}
