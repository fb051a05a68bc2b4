package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a [Set]. Zero fields take the defaults documented on each.
type Config struct {
	// MaxLag is the staleness bound: a replica serves reads only while it has replayed
	// everything the primary had written MaxLag ago (as the Set last measured). Default
	// 1s.
	MaxLag time.Duration
	// WaitTimeout bounds how long a read of a session waits for a replica to replay the
	// session's last commit before it runs on the primary instead. Default 200ms.
	WaitTimeout time.Duration
	// CheckInterval is how often the Set samples the primary's WAL position and each
	// replica's health and replay position. Default 50ms; at most MaxLag/2.
	CheckInterval time.Duration
	// CheckTimeout bounds each of those probes; a replica that does not answer within it
	// is unhealthy until it does. Default 1s.
	CheckTimeout time.Duration
	// Logger receives replicas' changes of health. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxLag == 0 {
		c.MaxLag = time.Second
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 200 * time.Millisecond
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = min(50*time.Millisecond, c.MaxLag/2)
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"max_lag", c.MaxLag}, {"wait_timeout", c.WaitTimeout}, {"check_interval", c.CheckInterval}, {"check_timeout", c.CheckTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.name, d.v))
		}
	}
	if c.MaxLag > 0 && c.CheckInterval > c.MaxLag/2 {
		errs = append(errs, fmt.Errorf("check_interval: must be at most half of max_lag (%s), got %s", c.MaxLag, c.CheckInterval))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("replica: invalid config: %w", errors.Join(errs...))
}
