package replica

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/txmanager"
)

// member is one replica of a Set.
type member struct {
	name string // host:port, for logs
	pool *pgxpool.Pool
	tm   *txmanager.Manager

	mu        sync.Mutex
	healthy   bool // answered the last probe, in recovery
	replay    LSN  // its replay position at the last probe (or wait)
	staleness time.Duration
}

// state returns what the last probe found.
func (m *member) state() (healthy bool, replay LSN, staleness time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy, m.replay, m.staleness
}

// replayed records a replay position seen by a read's wait.
func (m *member) replayed(pos LSN) {
	m.mu.Lock()
	m.replay = max(m.replay, pos)
	m.mu.Unlock()
}

// sample is the primary's WAL position at a time.
type sample struct {
	at  time.Time
	pos LSN
}

// monitor probes the primary and the replicas every CheckInterval until ctx ends.
func (s *Set) monitor(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.check(ctx)
		}
	}
}

// check samples the primary's WAL position, then probes each replica.
func (s *Set) check(ctx context.Context) {
	now := time.Now()
	if pos, err := s.queryLSN(ctx, s.primary.Pool(), "select pg_current_wal_flush_lsn()::text"); err == nil {
		// Keep the samples of the last 2×MaxLag, and at least one.
		keep := 0
		for keep < len(s.samples)-1 && now.Sub(s.samples[keep].at) > 2*s.cfg.MaxLag {
			keep++
		}
		s.samples = append(s.samples[keep:], sample{at: now, pos: pos})
	}
	var wg sync.WaitGroup
	for _, m := range s.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.probe(ctx, m, now)
		}()
	}
	wg.Wait()
}

// probe asks a replica whether it is in recovery and how far it has replayed.
func (s *Set) probe(ctx context.Context, m *member, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	var inRecovery bool
	var replay *string
	err := m.pool.QueryRow(ctx, "select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").Scan(&inRecovery, &replay)
	healthy := err == nil && inRecovery && replay != nil
	var pos LSN
	if healthy {
		pos, err = ParseLSN(*replay)
		healthy = err == nil
	}
	staleness := time.Duration(1<<63 - 1)
	// The replica holds everything the primary had at the newest sample it has reached.
	for i := len(s.samples) - 1; healthy && i >= 0; i-- {
		if s.samples[i].pos <= pos {
			staleness = now.Sub(s.samples[i].at)
			break
		}
	}
	m.mu.Lock()
	was := m.healthy
	m.healthy = healthy
	if healthy {
		m.replay = max(m.replay, pos)
	}
	m.staleness = staleness
	m.mu.Unlock()
	switch {
	case was == healthy:
	case healthy:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "replica: serving reads", slog.String("replica", m.name))
	case err != nil:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "replica: unhealthy, reads go elsewhere", slog.String("replica", m.name), slog.Any("error", err))
	default:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "replica: not in recovery (promoted?), reads go elsewhere", slog.String("replica", m.name))
	}
}

// queryLSN runs a query that returns a pg_lsn as text, within CheckTimeout.
func (s *Set) queryLSN(ctx context.Context, q txmanager.Querier, sql string, args ...any) (LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	var text string
	if err := q.QueryRow(ctx, sql, args...).Scan(&text); err != nil {
		return 0, err
	}
	return ParseLSN(text)
}
