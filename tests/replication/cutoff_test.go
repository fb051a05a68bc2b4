package replication_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// cutOffReport is what became of the Dos run while the standby was cut off, once the
// primary was lost and the standby promoted.
type cutOffReport struct {
	acknowledged, failed, unknown int // Dos while cut off: nil, ordinary error, unknown outcome
	lostCommits                   int // acknowledged Dos whose row the new primary lacks
	eventsOfLostRows              int // of those, events the subscriber had already received
	redelivered                   int // events delivered again by the relay on the new primary
}

// cutOff writes 20 rows with the standby replicating, stops the standby (a network
// partition, as the primary sees it), runs n Dos (each with a 2s deadline), then loses
// the primary, starts the standby again and promotes it, and runs Dos until one
// succeeds there.
func cutOff(t *testing.T, tp *topology, n int) cutOffReport {
	t.Helper()
	ctx := testCtx(t)
	a := startApp(t, tp.failoverURL())
	do := func(row string, timeout time.Duration) (string, error) {
		ev := events.New(topic, row, events.WithKey("k"))
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return ev.ID.String(), a.units.Do(dctx, func(ctx context.Context, u *uow.UnitOfWork) error {
			if _, err := a.tm.Querier(ctx).Exec(ctx, "insert into ledger (id, writer, seq) values ($1, 0, 0)", row); err != nil {
				return err
			}
			return u.Emit(ev)
		})
	}
	for i := range 20 {
		_, err := do(fmt.Sprint("before-", i), 10*time.Second)
		require.NoError(t, err)
	}
	a.waitDelivered(t, 20)
	replayed(t, ctx, tp)
	a.mu.Lock()
	before := len(a.received)
	a.mu.Unlock()

	require.NoError(t, tp.standby.Stop(ctx))
	var rep cutOffReport
	acked := map[string]string{}
	for i := range n {
		row := fmt.Sprint("cut-", i)
		id, err := do(row, 2*time.Second)
		switch {
		case err == nil:
			rep.acknowledged++
			acked[row] = id
		case errors.Is(err, txmanager.ErrCommitOutcomeUnknown):
			rep.unknown++
		default:
			rep.failed++
		}
	}
	if rep.acknowledged > 0 {
		a.waitDelivered(t, before+rep.acknowledged) // the relay publishes what the primary holds
	}
	a.mu.Lock()
	beforeFailover := map[string]int{}
	for id, k := range a.received {
		beforeFailover[id] = k
	}
	a.mu.Unlock()

	require.NoError(t, tp.primary.Stop(ctx))
	require.NoError(t, tp.standby.Start(ctx))
	require.NoError(t, tp.standby.Promote(ctx))
	require.Eventually(t, func() bool {
		_, err := do("after", 5*time.Second)
		return err == nil
	}, 60*time.Second, 50*time.Millisecond, "a Do succeeds on the promoted standby")

	conn, err := pgx.Connect(ctx, tp.standby.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for row, id := range acked {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, "select exists (select from ledger where id = $1)", row).Scan(&ok))
		if !ok {
			rep.lostCommits++
			if beforeFailover[id] > 0 {
				rep.eventsOfLostRows++
			}
		}
	}
	// Give the relay on the new primary a moment to send what its copy of the outbox
	// still holds as pending.
	time.Sleep(2 * time.Second)
	a.mu.Lock()
	for id, k := range a.received {
		rep.redelivered += k - beforeFailover[id] - boolInt(beforeFailover[id] == 0 && k > 0)
	}
	a.mu.Unlock()
	return rep
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitDelivered waits until the subscriber has received n distinct events.
func (a *app) waitDelivered(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.received) >= n
	}, 30*time.Second, 20*time.Millisecond, "the subscriber receives %d events", n)
}

// replayed waits until the standby has replayed everything the primary wrote.
func replayed(t *testing.T, ctx context.Context, tp *topology) {
	t.Helper()
	pc, err := pgx.Connect(ctx, tp.primary.URL)
	require.NoError(t, err)
	defer pc.Close(context.Background())
	sc, err := pgx.Connect(ctx, tp.standby.URL)
	require.NoError(t, err)
	defer sc.Close(context.Background())
	var lsn string
	require.NoError(t, pc.QueryRow(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&lsn))
	require.Eventually(t, func() bool {
		var ok bool
		return sc.QueryRow(ctx, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok) == nil && ok
	}, 30*time.Second, 20*time.Millisecond, "the standby replays the primary's WAL")
}

func TestStandbyCutOffWithAsynchronousReplicationLosesAcknowledgedCommits(t *testing.T) {
	tp := newTopology(t)
	rep := cutOff(t, tp, 10)
	t.Logf("asynchronous, standby cut off: %+v", rep)
	assert.Equal(t, 10, rep.acknowledged, "an asynchronous primary commits without its standby")
	assert.Equal(t, 10, rep.lostCommits, "the promoted standby never received them")
	assert.Equal(t, 10, rep.eventsOfLostRows, "their events had been published before the failover")
}

func TestStandbyCutOffWithSynchronousReplicationAcknowledgesNothing(t *testing.T) {
	tp := newTopology(t, pgserver.Synchronous())
	rep := cutOff(t, tp, 3)
	t.Logf("synchronous, standby cut off: %+v", rep)
	assert.Zero(t, rep.acknowledged, "a synchronous primary waits for its standby: no Do returns nil")
	assert.Zero(t, rep.lostCommits)
	assert.Zero(t, rep.eventsOfLostRows, "no event of a transaction the standby lacks is published")
	assert.Equal(t, 3, rep.unknown+rep.failed)
}
