package provider

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/internal/redact"
	"github.com/uno-framework/uno/pool"
)

// Provider is a connected pool with health reports and database administration. Build it with [New]; it is safe for
// concurrent use; Close it when done.
type Provider struct {
	cfg    *Config // a pointer, so that printing a Provider's fields never shows it
	pool   *pool.Pool
	admin  *Admin
	logger *slog.Logger

	closeOnce sync.Once
}

// Option adjusts [New].
type Option func(*options)

type options struct {
	logger         *slog.Logger
	onHealthChange func(pool.State)
	newBackOff     func() backoff.BackOff
	pgxConfig      func(*pgxpool.Config)
}

// WithLogger sets the logger of the provider and its pool (default: slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithHealthCallback registers fn to be called by the pool's health monitor on each
// transition between pool.StateHealthy and pool.StateUnhealthy. fn runs on the monitor
// goroutine and must return quickly. The monitor runs only if HealthCheckPeriod > 0.
func WithHealthCallback(fn func(pool.State)) Option {
	return func(o *options) { o.onHealthChange = fn }
}

// WithBackoff sets the retry policy for connecting in [New] and for reconnecting after
// an outage: newBackOff must return a fresh policy on each call (default:
// pool.DefaultBackOff, exponential from 100ms to 5s, until the context ends).
func WithBackoff(newBackOff func() backoff.BackOff) Option {
	return func(o *options) { o.newBackOff = newBackOff }
}

// WithPgxConfig lets fn adjust the pgxpool configuration built from the Config before
// the pool is created: tracers, connection hooks, type registrations and other pgx
// settings that Config does not cover.
func WithPgxConfig(fn func(*pgxpool.Config)) Option {
	return func(o *options) { o.pgxConfig = fn }
}

// New validates cfg, connects — retrying with exponential backoff until ctx ends, or,
// when ctx has no deadline, for at most cfg.ConnectRetryTimeout — and returns the
// Provider. Validation problems come back as [ValidationErrors]; a failure to connect as
// a [*pool.ConnectError] that names the servers, the database and the user, says why
// the attempts stopped, and wraps the last cause. An authentication failure or a
// missing database is not retried. The error is returned, not logged. ctx bounds only
// the connecting; the Provider lives until Close.
func New(ctx context.Context, cfg Config, opts ...Option) (*Provider, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	pcfg, err := cfg.PgxPoolConfig()
	if err != nil {
		return nil, err
	}
	if o.pgxConfig != nil {
		o.pgxConfig(pcfg)
	}
	pl, err := pool.New(ctx, pcfg, pool.Config{
		IdleValidationThreshold: cfg.IdleValidationThreshold,
		ValidationTimeout:       validationTimeout(cfg),
		AcquireTimeout:          cfg.AcquireTimeout,
		HealthCheckInterval:     cfg.HealthCheckPeriod,
		ConnectRetryTimeout:     cfg.ConnectRetryTimeout,
		OnStateChange:           o.onHealthChange,
		Logger:                  o.logger,
		Reconnect:               o.newBackOff,
	})
	if err != nil {
		return nil, fmt.Errorf("provider: %w", redact.Error(err, cfg.secrets()...))
	}
	c := cfg
	p := &Provider{
		cfg:    &c,
		pool:   pl,
		admin:  NewAdmin(pl.Pgx()),
		logger: o.logger,
	}
	o.logger.LogAttrs(ctx, slog.LevelInfo, "provider: connected to PostgreSQL", slog.Any("config", cfg))
	return p, nil
}

// validationTimeout bounds a validation ping: the connect timeout, else 5s.
func validationTimeout(c Config) time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return pool.DefaultValidationTimeout
}

// Config returns the configuration the Provider was built with.
func (p *Provider) Config() Config { return *p.cfg }

// Pool returns the pgx pool: the native, fastest way to run statements.
func (p *Provider) Pool() *pgxpool.Pool { return p.pool.Pgx() }

// ConnPool returns uno's pool around [Provider.Pool]: acquire with a timeout, state,
// stats.
func (p *Provider) ConnPool() *pool.Pool { return p.pool }

// Logger returns the Provider's logger.
func (p *Provider) Logger() *slog.Logger { return p.logger }

// Admin returns the database administration of the server the Provider is connected to.
func (p *Provider) Admin() *Admin { return p.admin }

// Stats returns a snapshot of the pool's counters.
func (p *Provider) Stats() pool.Stats { return p.pool.Stats() }

// HealthReport is the result of [Provider.Health].
type HealthReport struct {
	Reachable     bool          // a statement made the round trip
	Latency       time.Duration // round trip of SELECT 1 on an acquired connection
	ServerVersion string        // server_version, e.g. "15.8 (Debian 15.8-1.pgdg120+1)"
	InRecovery    bool          // pg_is_in_recovery(): a standby, or a primary recovering
	State         pool.State    // the pool monitor's view
	Pool          pool.Stats    // the pool's counters, taken before the check
	CheckedAt     time.Time
}

// Health checks the server and reports on it. When the server cannot be reached the
// report says so (Reachable false, pool stats filled) and the error says why.
func (p *Provider) Health(ctx context.Context) (HealthReport, error) {
	r := HealthReport{CheckedAt: time.Now(), Pool: p.pool.Stats()}
	r.State = r.Pool.State
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return r, p.healthError(err)
	}
	defer conn.Release()
	start := time.Now()
	if _, err := conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		return r, p.healthError(err)
	}
	r.Latency = time.Since(start)
	r.Reachable = true
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version'), pg_is_in_recovery()",
		pgx.QueryExecModeSimpleProtocol).Scan(&r.ServerVersion, &r.InRecovery)
	if err != nil {
		return r, p.healthError(err)
	}
	return r, nil
}

// HealthCheck makes one round trip to the server and returns nil if it succeeded.
func (p *Provider) HealthCheck(ctx context.Context) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return p.healthError(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		return p.healthError(err)
	}
	return nil
}

func (p *Provider) healthError(err error) error {
	return fmt.Errorf("provider: health check of PostgreSQL at %s:%d, database %s: %w",
		p.cfg.Host, p.cfg.Port, strconv.Quote(p.cfg.Database), redact.Error(err, p.cfg.Password))
}

// Close stops the health monitor and closes the pool,
// waiting for acquired connections to be released. It is safe to call more than once.
func (p *Provider) Close() {
	p.closeOnce.Do(func() {
		p.pool.Close()
	})
}

// String describes the Provider by its configuration, without the password.
func (p *Provider) String() string { return "provider.Provider{" + p.cfg.String() + "}" }

// Format prints [Provider.String] for every verb.
func (p *Provider) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }
