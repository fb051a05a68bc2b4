package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/txmanager"
)

// Set routes read-only transactions to replicas (streaming hot standbys) and everything
// else to the primary. It is safe for concurrent use.
type Set struct {
	cfg     Config
	primary *txmanager.Manager
	members []*member
	segSize uint64   // the primary's wal_segment_size
	tracker *tracker // the commit writer of Track

	samples []sample // the primary's WAL positions; only the monitor touches them
	stop    context.CancelFunc
	done    chan struct{}
	closed  sync.Once

	replicaReads, primaryReads, waits atomic.Int64
}

// New returns a Set over primary (the Manager of the application's writes) and
// replicas, one pool per standby (from provider.New or pgxpool.New on the standby's
// address; the caller keeps closing them). Each replica's transactions are run by a
// Manager made with primary.Replica, so primary adopts them (see [Set.Read]). It probes
// the replicas once before it returns, then every cfg.CheckInterval in a goroutine of
// its own until [Set.Close].
func New(ctx context.Context, primary *txmanager.Manager, replicas []*pgxpool.Pool, cfg Config) (*Set, error) {
	if primary == nil {
		return nil, errors.New("replica: New needs the primary's *txmanager.Manager")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Set{cfg: cfg, primary: primary, done: make(chan struct{})}
	s.tracker = &tracker{set: s}
	for i, p := range replicas {
		if p == nil {
			return nil, fmt.Errorf("replica: replica pool %d is nil", i)
		}
		tm, err := primary.Replica(p)
		if err != nil {
			return nil, fmt.Errorf("replica: replica pool %d: %w", i, err)
		}
		cc := p.Config().ConnConfig
		s.members = append(s.members, &member{name: cc.Host + ":" + strconv.Itoa(int(cc.Port)), pool: p, tm: tm})
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CheckTimeout)
	var seg int64
	err := primary.Pool().QueryRow(cctx, "select setting::bigint from pg_settings where name = 'wal_segment_size'").Scan(&seg)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("replica: ask the primary for its WAL segment size: %w", err)
	}
	s.segSize = uint64(seg)
	s.check(ctx)
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	go s.monitor(mctx)
	return s, nil
}

// Close stops the Set's probes. It leaves the pools open.
func (s *Set) Close() {
	s.closed.Do(func() {
		s.stop()
		<-s.done
	})
}

// Primary returns the Manager of the primary.
func (s *Set) Primary() *txmanager.Manager { return s.primary }

// Querier returns what statements of ctx must run through: the transaction ctx carries
// (on the primary or on a replica), else the primary's pool.
//
// Deprecated: use the primary's Manager, tm.Querier(ctx), which returns the same: the
// replicas' transactions are its own (see txmanager.Manager.Replica).
func (s *Set) Querier(ctx context.Context) txmanager.Querier {
	return s.primary.Querier(ctx)
}

// Do runs fn in a transaction on the primary, as [txmanager.Manager.Do] does, and
// records its commit in the session ctx carries (see [Set.Track]).
func (s *Set) Do(ctx context.Context, fn func(ctx context.Context) error, opts ...txmanager.Option) error {
	if SessionFrom(ctx) == nil {
		return s.primary.Do(ctx, fn, opts...)
	}
	return s.primary.Do(ctx, func(ctx context.Context) error {
		if err := s.Track(ctx); err != nil {
			return err
		}
		return fn(ctx)
	}, opts...)
}

// Track records the commit of ctx's transaction, a transaction on the primary, in the
// session ctx carries, so that the session's later reads see it; without a session it
// does nothing. Call it in the transaction's outermost scope (a savepoint scope rolled
// back drops it): [Set.Do] does, and code that runs its own Dos (a unit of work, for
// instance) calls it once in each. It costs no round trip: the commit's WAL position
// is read by a statement sent after COMMIT in COMMIT's own round trip.
func (s *Set) Track(ctx context.Context) error {
	sess := SessionFrom(ctx)
	if sess == nil {
		return nil
	}
	w := s.tracker
	if staged, err := txmanager.Staged(ctx, w); err != nil || len(staged) > 0 {
		return err
	}
	m := &mark{}
	if err := txmanager.Stage(ctx, w, m); err != nil {
		return err
	}
	return txmanager.OnCommit(ctx, func(ctx context.Context) error {
		if m.pos == 0 {
			// The statement after COMMIT did not answer: ask the primary (any
			// connection: its insert position is past the commit by now).
			pos, err := s.queryLSN(ctx, s.primary.Pool(), "select pg_current_wal_insert_lsn()::text")
			if err != nil {
				sess.requirePrimary()
				return fmt.Errorf("replica: learn the WAL position of a commit; the session reads on the primary from now on: %w", err)
			}
			m.pos = replayTarget(pos, s.segSize)
		}
		sess.advance(m.pos)
		return nil
	})
}

// tracker is the commit writer of Track: it reads the insert position after COMMIT.
type tracker struct{ set *Set }

// mark receives the WAL position of one transaction's commit.
type mark struct{ pos LSN }

// QueueCommit queues nothing before COMMIT.
func (*tracker) QueueCommit(context.Context, *pgx.Batch, []any) error { return nil }

// QueueAfterCommit queues the read of the WAL insert position, which is past the
// commit's record once COMMIT has returned.
func (t *tracker) QueueAfterCommit(_ context.Context, b *pgx.Batch, items []any) error {
	b.Queue("select pg_current_wal_insert_lsn()::text").QueryRow(func(row pgx.Row) error {
		var text string
		if err := row.Scan(&text); err != nil {
			return err
		}
		pos, err := ParseLSN(text)
		if err != nil {
			return err
		}
		for _, it := range items {
			it.(*mark).pos = replayTarget(pos, t.set.segSize)
		}
		return nil
	})
	return nil
}
