package replica

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uno-framework/uno/txmanager"
)

// Read runs fn in a read-only transaction (opts as for [txmanager.Manager.Do], plus
// txmanager.ReadOnly) on a replica that is healthy, within the staleness bound
// (Config.MaxLag) and, when ctx carries a [Session], has replayed the session's last
// commit; it waits up to Config.WaitTimeout for one to replay it. Otherwise — no
// replica healthy, none fresh enough, none caught up in time — fn runs on the primary.
//
// fn's code runs on the primary's Manager as anywhere else — tm.Querier(ctx), tm's own
// Querier methods (sqlc's db.New(tm)), an ent client over entdriver.New(tm), a *sql.DB
// from sqldriver.Open(tm) — and its statements run in the read's transaction, wherever
// it runs; a write fails with SQLSTATE 25006. A RequiresNew or NotSupported scope of tm
// inside fn runs on the primary.
//
// When ctx already carries a transaction, fn runs in it. When the chosen replica turns
// out to be unreachable, fn runs again on the primary: it must have no effect besides
// its reads. SERIALIZABLE is not available on a replica: a Read asking for it runs on
// the primary.
func (s *Set) Read(ctx context.Context, fn func(ctx context.Context) error, opts ...txmanager.Option) error {
	if txmanager.InTransaction(ctx) {
		return fn(ctx)
	}
	opts = append(opts[:len(opts):len(opts)], txmanager.ReadOnly())
	var need LSN
	if sess := SessionFrom(ctx); sess != nil {
		pos, primaryOnly := sess.Position()
		if primaryOnly {
			return s.onPrimary(ctx, fn, opts)
		}
		need = pos
	}
	m := s.pick(need)
	if m == nil && need > 0 {
		m = s.await(ctx, need)
	}
	if m == nil {
		return s.onPrimary(ctx, fn, opts)
	}
	err := m.tm.Do(ctx, fn, opts...)
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ctx.Err() == nil {
		m.mu.Lock()
		m.healthy = false
		m.mu.Unlock()
		s.cfg.Logger.WarnContext(ctx, "replica: unreachable, the read runs on the primary", "replica", m.name, "error", err)
		return s.onPrimary(ctx, fn, opts)
	}
	s.replicaReads.Add(1)
	return err
}

func (s *Set) onPrimary(ctx context.Context, fn func(ctx context.Context) error, opts []txmanager.Option) error {
	s.primaryReads.Add(1)
	return s.primary.Do(ctx, fn, opts...)
}

// pick returns the freshest healthy replica within the staleness bound that has
// replayed need, or nil.
func (s *Set) pick(need LSN) *member {
	var best *member
	var bestReplay LSN
	for _, m := range s.members {
		healthy, replay, staleness := m.state()
		if healthy && staleness <= s.cfg.MaxLag && replay >= need && (best == nil || replay > bestReplay) {
			best, bestReplay = m, replay
		}
	}
	return best
}

// await polls the healthy replicas within the staleness bound until one has replayed
// need, for up to WaitTimeout, and returns it, or nil.
func (s *Set) await(ctx context.Context, need LSN) *member {
	var candidates []*member
	for _, m := range s.members {
		if healthy, _, staleness := m.state(); healthy && staleness <= s.cfg.MaxLag {
			candidates = append(candidates, m)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	s.waits.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	pause := time.Millisecond
	for {
		for _, m := range candidates {
			pos, err := s.queryLSN(ctx, m.pool, "select coalesce(pg_last_wal_replay_lsn(), '0/0')::text")
			if err != nil {
				continue
			}
			m.replayed(pos)
			if pos >= need {
				return m
			}
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// Stats counts where reads ran.
type Stats struct {
	// ReplicaReads is the number of Reads that ran on a replica.
	ReplicaReads int64
	// PrimaryReads is the number of Reads that ran on the primary: no replica was
	// healthy, fresh enough or caught up with the session in time.
	PrimaryReads int64
	// Waits is the number of Reads that waited for a replica to replay their
	// session's last commit.
	Waits int64
}

// Stats returns the counts of reads since New.
func (s *Set) Stats() Stats {
	return Stats{ReplicaReads: s.replicaReads.Load(), PrimaryReads: s.primaryReads.Load(), Waits: s.waits.Load()}
}
