package fault_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// outcomes records what each writer's Do reported, by the row it wrote.
type outcomes struct {
	mu        sync.Mutex
	committed map[string]bool // Do returned nil
	unknown   map[string]bool // Do returned ErrCommitOutcomeUnknown
	failed    map[string]error
	overran   []string // Dos that returned later than their context allowed
	// maxOverrun is the longest a Do returned after its context's deadline.
	maxOverrun time.Duration
}

func (o *outcomes) record(v string, err error, overran time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.committed[v] = true
	case errors.Is(err, txmanager.ErrCommitOutcomeUnknown):
		o.unknown[v] = true
	default:
		o.failed[v] = err
	}
	o.maxOverrun = max(o.maxOverrun, overran)
	// Past the deadline by more than the scheduling slack of a loaded machine.
	if overran > 500*time.Millisecond {
		o.overran = append(o.overran, fmt.Sprintf("%s by %s (%v)", v, overran, err))
	}
}

// TestRestartUnderLoad restarts a private PostgreSQL (fast, then immediate shutdown)
// under 8 writers that each insert a row and emit its event in a unit of work, with a
// relay delivering to a router handler through the default GoChannel.
func TestRestartUnderLoad(t *testing.T) {
	srv := pgtest.LocalServer(t)
	ctx := testCtx(t)
	pc, err := pgxpool.ParseConfig(srv.URL)
	require.NoError(t, err)
	pc.MaxConns = 12
	pcfg := pool.DefaultConfig()
	pcfg.HealthCheckInterval = 100 * time.Millisecond
	pcfg.AcquireTimeout = 2 * time.Second
	pcfg.Reconnect = func() backoff.BackOff {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 20*time.Millisecond, 200*time.Millisecond, 0
		return b
	}
	p, err := pool.New(ctx, pc, pcfg)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, schema.MigratePool(ctx, p.Pgx()))
	_, err = p.Pgx().Exec(ctx, "create table restart_rows (v text primary key)")
	require.NoError(t, err)

	logger, logs := logcapture.NewText()
	tm, err := txmanager.New(p.Pgx(), txmanager.Config{Logger: logger, RollbackTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	units, err := uow.NewManager(tm, events.NewOutbox(events.OutboxConfig{}))
	require.NoError(t, err)

	// The relay and a handler, with the default wiring.
	var delivered sync.Map
	var lastDelivery atomic.Int64
	pubsub := events.NewGoChannel(logger)
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	require.NoError(t, err)
	_, err = events.Handle(router, pubsub, "fault.row", func(ctx context.Context, ev events.Received[string]) error {
		delivered.Store(ev.Payload, true)
		lastDelivery.Store(time.Now().UnixNano())
		return nil
	})
	require.NoError(t, err)
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(context.WithoutCancel(ctx)) }()
	<-router.Running()
	relay, err := events.NewRelay(p.Pgx(), pubsub, events.RelayConfig{
		Logger: slog.New(slog.DiscardHandler), PollInterval: 50 * time.Millisecond,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() {
		stopRelay()
		<-relayDone
		_ = router.Close()
		<-routerDone
		_ = pubsub.Close()
	}()

	res := &outcomes{committed: map[string]bool{}, unknown: map[string]bool{}, failed: map[string]error{}}
	const doTimeout = 2 * time.Second
	var lastCommit atomic.Int64
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("w%d-%d", w, n)
				dctx, cancel := context.WithTimeout(ctx, doTimeout)
				deadline, _ := dctx.Deadline()
				err := units.Do(dctx, func(ctx context.Context, u *uow.UnitOfWork) error {
					if _, err := tm.Querier(ctx).Exec(ctx, "insert into restart_rows (v) values ($1)", v); err != nil {
						return err
					}
					return u.Emit(events.New("fault.row", v, events.WithKey(v)))
				})
				cancel()
				res.record(v, err, time.Since(deadline))
				if err == nil {
					lastCommit.Store(time.Now().UnixNano())
				} else {
					time.Sleep(5 * time.Millisecond) // do not spin while the server is down
				}
			}
		})
	}

	restartsOf := []struct {
		mode string
		stop func(context.Context) error
	}{{"fast", srv.StopFast}, {"immediate", srv.Stop}}
	if *long {
		restartsOf = append(restartsOf, restartsOf...)
	}
	for _, r := range restartsOf {
		time.Sleep(400 * time.Millisecond)
		require.NoError(t, r.stop(ctx))
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, srv.Start(ctx))
		up := time.Now()
		require.Eventually(t, func() bool { return lastCommit.Load() > up.UnixNano() }, 20*time.Second, time.Millisecond,
			"no Do committed after the %s restart", r.mode)
		poolBack := time.Unix(0, lastCommit.Load()).Sub(up)
		require.Eventually(t, func() bool { return lastDelivery.Load() > up.UnixNano() }, 20*time.Second, time.Millisecond,
			"the relay delivered nothing after the %s restart", r.mode)
		relayBack := time.Unix(0, lastDelivery.Load()).Sub(up)
		t.Logf("%s restart: first commit %s after the server was back, first delivery %s", r.mode, poolBack, relayBack)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	writers.Wait()

	// What the database holds.
	rows, err := p.Pgx().Query(ctx, "select v from restart_rows")
	require.NoError(t, err)
	inDB := map[string]bool{}
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		inDB[v] = true
	}
	require.NoError(t, rows.Err())

	res.mu.Lock()
	defer res.mu.Unlock()
	for v := range res.committed {
		assert.True(t, inDB[v], "Do returned nil for %s but its row is not there", v)
	}
	for v := range inDB {
		if err, ok := res.failed[v]; ok {
			t.Errorf("%s committed but its Do reported an ordinary failure: %v", v, err)
		}
	}
	assert.Empty(t, res.overran, "Dos that outlived their context")
	// Every committed row's event reaches the handler.
	require.Eventually(t, func() bool {
		for v := range inDB {
			if _, ok := delivered.Load(v); !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "events of committed rows were not delivered")
	delivered.Range(func(k, _ any) bool {
		assert.True(t, inDB[k.(string)], "event %s delivered for a transaction that did not commit", k)
		return true
	})
	resolved := countLines(logs.String(), "the server reports the transaction committed")
	unknownCommitted := 0
	for v := range res.unknown {
		if inDB[v] {
			unknownCommitted++
		}
	}
	t.Logf("%d Dos: %d committed (%d of them resolved after a lost COMMIT), %d unknown (%d of which had committed), %d failed; "+
		"%d rows; pool resets %d; longest past its deadline %s",
		len(res.committed)+len(res.unknown)+len(res.failed), len(res.committed), resolved, len(res.unknown), unknownCommitted,
		len(res.failed), len(inDB), p.Stats().Resets, max(res.maxOverrun, 0))
	assert.Greater(t, len(res.committed), 16)
	pgtest.RequireNoAcquired(t, p.Pgx())
}

// countLines returns how many lines of s contain sub.
func countLines(s, sub string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}
