package pool

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Config holds the settings the pool adds to a pgxpool.Config. Start from
// [DefaultConfig]; in a Config literal a zero duration means what its field says
// (usually "disabled"), not "the default".
type Config struct {
	// IdleValidationThreshold is how long a connection may sit idle before it is
	// validated (pinged) at hand-out; a broken connection is discarded and another one is
	// handed out. Zero validates every connection before every hand-out, which costs a
	// round trip per acquisition. Default: 1s.
	IdleValidationThreshold time.Duration

	// ValidationTimeout bounds one validation ping. Zero leaves it to the caller's
	// context and the acquire timeout. Default: 5s.
	ValidationTimeout time.Duration

	// AcquireTimeout bounds how long an acquisition waits for a connection, in
	// [Pool.Acquire] and in every pgxpool method that acquires one (Exec, Query, Begin,
	// ...). The caller's context still applies: whichever ends first wins. Zero means no
	// limit other than the context. Default: 30s.
	AcquireTimeout time.Duration

	// HealthCheckInterval is the period of the health monitor. Zero disables the
	// monitor: then nothing reconnects in the background and [Pool.State] keeps the state
	// seen at connection time. Default: 30s.
	HealthCheckInterval time.Duration

	// OnStateChange, if set, is called from the monitor goroutine on each transition
	// between [StateHealthy] and [StateUnhealthy], after the state has changed. It must
	// not block for long and must not call [Pool.Close].
	OnStateChange func(State)

	// ConnectRetryTimeout bounds how long [New] retries when its context has no
	// deadline; a context with a deadline bounds it instead. Zero means no bound but the
	// context. Default: 1m.
	ConnectRetryTimeout time.Duration

	// Logger receives state transitions, retries and acquire timeouts. Nil discards them.
	Logger *slog.Logger

	// Reconnect returns a fresh backoff policy; it is used by [New] to connect and by the
	// monitor to reconnect after an outage. Nil means [DefaultBackOff]. Retrying stops
	// when the policy says so or when the context ends (New) or the pool closes (monitor).
	Reconnect func() backoff.BackOff
}

// Defaults used by [DefaultConfig] and [DefaultBackOff].
const (
	DefaultIdleValidationThreshold = time.Second
	DefaultValidationTimeout       = 5 * time.Second
	DefaultAcquireTimeout          = 30 * time.Second
	DefaultHealthCheckInterval     = 30 * time.Second
	DefaultConnectRetryTimeout     = time.Minute
)

// DefaultConfig returns the recommended settings.
func DefaultConfig() Config {
	return Config{
		IdleValidationThreshold: DefaultIdleValidationThreshold,
		ValidationTimeout:       DefaultValidationTimeout,
		AcquireTimeout:          DefaultAcquireTimeout,
		HealthCheckInterval:     DefaultHealthCheckInterval,
		ConnectRetryTimeout:     DefaultConnectRetryTimeout,
	}
}

// DefaultBackOff returns the default retry policy for connecting and reconnecting:
// exponential from 100ms to at most 5s between attempts, with jitter, without a limit
// on the total time (the context or Close ends it).
func DefaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.Multiplier = 2
	b.RandomizationFactor = 0.5
	b.MaxElapsedTime = 0
	return b
}

// Validate reports every negative duration in c.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("pool: %s must not be negative (got %s)", name, d))
		}
	}
	check("IdleValidationThreshold", c.IdleValidationThreshold)
	check("ValidationTimeout", c.ValidationTimeout)
	check("AcquireTimeout", c.AcquireTimeout)
	check("HealthCheckInterval", c.HealthCheckInterval)
	check("ConnectRetryTimeout", c.ConnectRetryTimeout)
	return errors.Join(errs...)
}

func (c Config) newBackOff() backoff.BackOff {
	if c.Reconnect != nil {
		if b := c.Reconnect(); b != nil {
			return b
		}
	}
	return DefaultBackOff()
}
