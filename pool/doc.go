// Package pool is uno's connection pool: a thin layer over pgxpool that makes the pool
// dependable when the database misbehaves.
//
// A [Pool] wraps a [pgxpool.Pool] and adds:
//
//   - validation of idle connections: a connection that has been idle for longer than
//     [Config.IdleValidationThreshold] is pinged before it is handed out, and a broken
//     one is discarded (the caller gets another connection, never the broken one);
//   - an acquire timeout: [Pool.Acquire] — and every acquisition made through the
//     underlying pgxpool, including Exec and Query on [Pool.Pgx] — gives up after
//     [Config.AcquireTimeout]; an exhausted pool yields an error matching
//     [ErrAcquireTimeout] instead of a hang;
//   - connection with exponential backoff: [New] returns once the server answers,
//     retrying (github.com/cenkalti/backoff/v4) until its context ends;
//   - a health monitor: a goroutine that probes the server every
//     [Config.HealthCheckInterval] and whenever a broken connection was discarded.
//     A broken connection alone (a cancelled query, a connection pgx closed after an
//     error, a terminated backend) is no outage: it costs that connection, which the
//     pool replaces. Only when the probe fails (one idle connection does not answer,
//     and neither does a fresh connection made outside the pool) does the monitor drop
//     the idle connections and reconnect with backoff; it reports healthy/unhealthy
//     transitions to [Config.OnStateChange] and to log/slog. The probe that follows a
//     discarded connection makes no connection of its own when none is idle: it leaves
//     the verdict to the next periodic probe;
//   - [AcquireFrom], for code that holds only the *pgxpool.Pool: the same acquire
//     timeout and typed error as [Pool.Acquire];
//   - [Pool.Stats]: pgxpool's counters plus the pool's own (acquire timeouts, broken
//     connections discarded, resets, reconnections, state).
//
// Most applications do not use this package directly: provider.New builds a Pool from a
// provider.Config.
package pool
