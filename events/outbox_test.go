package events_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestEmitOutsideTransactionFails(t *testing.T) {
	e := newEnv(t)
	err := e.outbox.Emit(context.Background(), events.New("t", 1))
	require.ErrorIs(t, err, txmanager.ErrNoTransaction)
	assert.Zero(t, outboxCount(t, e.pool))
}

func TestEmitReportsInvalidEventsAndNothingIsWritten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("", 1))
	})
	require.ErrorIs(t, err, events.ErrInvalidEvent)

	err = e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("ok", 1), events.New("bad", func() {}))
	})
	var me *events.MarshalError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "bad", me.Topic)
	assert.Zero(t, outboxCount(t, e.pool), "a failed Emit fails the transaction and writes nothing")
}

func TestEmitWritesOneEnvelopeWithTheEventsAndTheirFields(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	ev := events.New("account.debited", map[string]int{"amount": 5},
		events.WithKey("acct-1"), events.WithType("Debited"), events.WithMetadata("trace", "abc"), events.WithOccurredAt(at))
	raw := events.Event{Topic: "raw", Payload: []byte("not json")} // no ID, no OccurredAt: filled by Emit
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, ev, raw) }))

	// One row: the event without key joins the envelope of the transaction's first event.
	var (
		part             int16
		keys             []string
		count, delivered int32
		attempts         int32
		nextAttempt      *time.Time
	)
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT partition, keys, count, delivered, attempts, next_attempt_at FROM uno_outbox`).
		Scan(&part, &keys, &count, &delivered, &attempts, &nextAttempt))
	assert.Equal(t, events.PartitionOf("acct-1", ev.ID), part)
	assert.Equal(t, []string{"acct-1", ""}, keys)
	assert.Equal(t, int32(2), count)
	assert.Zero(t, delivered)
	assert.Zero(t, attempts)
	assert.Nil(t, nextAttempt)

	got, err := events.ReadPending(ctx, e.pool, 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, ev.ID, got[0].ID)
	assert.Equal(t, part, got[0].Partition)
	assert.Equal(t, "account.debited", got[0].Topic)
	assert.Equal(t, "acct-1", got[0].Key)
	assert.Equal(t, "Debited", got[0].Type)
	assert.JSONEq(t, `{"amount":5}`, string(got[0].Payload.([]byte)))
	assert.Equal(t, map[string]string{"trace": "abc"}, got[0].Metadata)
	assert.True(t, at.Equal(got[0].OccurredAt))
	assert.Zero(t, got[0].Attempts)

	assert.NotEqual(t, uuid.Nil, got[1].ID, "Emit draws an ID")
	assert.Equal(t, []byte("not json"), got[1].Payload, "a []byte payload is written as is")
	assert.Empty(t, got[1].Metadata)
	assert.WithinDuration(t, time.Now(), got[1].OccurredAt, time.Minute)

	limited, err := events.ReadPending(ctx, e.pool, 1)
	require.NoError(t, err)
	assert.Len(t, limited, 1)
}

func TestEmitWritesOneEnvelopePerPartitionInEmissionOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Two keys of different partitions, interleaved.
	k1, k2 := "a", "b"
	require.NotEqual(t, events.PartitionOf(k1, uuid.Nil), events.PartitionOf(k2, uuid.Nil))
	var evs []events.Event
	for i := 0; i < 6; i++ {
		k := k1
		if i%2 == 1 {
			k = k2
		}
		evs = append(evs, events.New("t", i, events.WithKey(k)))
	}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, evs...) }))
	assert.Equal(t, 2, outboxRows(t, e.pool), "one envelope per partition")
	assert.Equal(t, 6, outboxCount(t, e.pool))
	got, err := events.ReadPending(ctx, e.pool, 0)
	require.NoError(t, err)
	perKey := map[string][]string{}
	for _, p := range got {
		perKey[p.Key] = append(perKey[p.Key], string(p.Payload.([]byte)))
	}
	assert.Equal(t, map[string][]string{k1: {"0", "2", "4"}, k2: {"1", "3", "5"}}, perKey)
}

func TestEmitRejectsTextPostgreSQLCannotStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, ev := range []events.Event{
		events.New("t\x00", 1),
		events.New("t", 1, events.WithKey("k\xff")),
		events.New("t", 1, events.WithType("a\x00b")),
		events.New("t", 1, events.WithMetadata("m", "v\x00")),
	} {
		err := e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, ev) })
		require.ErrorIs(t, err, events.ErrInvalidEvent)
	}
	assert.Zero(t, outboxRows(t, e.pool))
}

func TestEventIsNotVisibleBeforeCommit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var seenInside, seenOutside int
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if _, err := e.tm.Querier(ctx).Exec(ctx, `SELECT 1`); err != nil { // the transaction has begun
			return err
		}
		if err := e.outbox.Emit(ctx, events.New("t", 1)); err != nil {
			return err
		}
		// Another connection must not see it; nor does the transaction itself: the
		// row is written with COMMIT.
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_outbox`).Scan(&seenOutside); err != nil {
			return err
		}
		return e.tm.Querier(ctx).QueryRow(ctx, `SELECT count(*) FROM uno_outbox`).Scan(&seenInside)
	}))
	assert.Zero(t, seenOutside)
	assert.Zero(t, seenInside)
	assert.Equal(t, 1, outboxCount(t, e.pool))
}

// deliveries runs a relay to a recorder for the test and returns the recorder.
func deliveries(t *testing.T, e *env, cfg events.RelayConfig) *recorder {
	t.Helper()
	rec := newRecorder()
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = time.Second
	}
	relay, err := events.NewRelay(e.pool, rec, cfg)
	require.NoError(t, err)
	runRelay(t, relay)
	return rec
}

// topicsOf returns "topic/payload" of each message, in order.
func payloadsOf(msgs []*message.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Metadata.Get(events.MetadataTopic) + "/" + string(m.Payload)
	}
	return out
}

func TestRolledBackDoPublishesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rec := deliveries(t, e, events.RelayConfig{})
	boom := errors.New("boom")
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		if err := e.outbox.Emit(ctx, events.New("rolled-back", 1, events.WithKey("k"))); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	// A committed transaction after it: once its event is delivered, the relay has
	// seen everything before it.
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("committed", 2, events.WithKey("k")))
	}))
	waitFor(t, 10*time.Second, "the committed event", func() bool { return rec.count() >= 1 })
	assert.Equal(t, []string{"committed/2"}, payloadsOf(rec.all()))
}

func TestRolledBackNestedScopeDropsOnlyItsEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rec := deliveries(t, e, events.RelayConfig{})
	emit := func(ctx context.Context, n int) error {
		return e.outbox.Emit(ctx, events.New("nested", n, events.WithKey("k")))
	}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if err := emit(ctx, 1); err != nil {
			return err
		}
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			if err := emit(ctx, 2); err != nil {
				return err
			}
			if _, err := e.tm.Querier(ctx).Exec(ctx, `SELECT 1`); err != nil {
				return err
			}
			return errors.New("the nested scope fails")
		}, txmanager.Nested())
		if err == nil {
			return errors.New("the nested scope should have failed")
		}
		if err := e.tm.Do(ctx, func(ctx context.Context) error { return emit(ctx, 3) }, txmanager.Nested()); err != nil {
			return err
		}
		return emit(ctx, 4)
	}))
	waitFor(t, 10*time.Second, "three events", func() bool { return rec.count() >= 3 })
	assert.Equal(t, []string{"nested/1", "nested/3", "nested/4"}, payloadsOf(rec.all()))
}

func TestDoRetriedAfterSerializationFailureDeliversEachEventOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `INSERT INTO test_counters (name, n) VALUES ('retry', 0) ON CONFLICT (name) DO UPDATE SET n = 0`)
	require.NoError(t, err)
	rec := deliveries(t, e, events.RelayConfig{})

	// Two REPEATABLE READ transactions read the counter, both emit, then both update
	// it: the second update fails with 40001 once the first commits, and the manager
	// runs that transaction again. The failed attempt's event must vanish.
	var read sync.WaitGroup
	read.Add(2)
	var attempts atomic.Int32
	run := func(name string) error {
		first := true
		return e.tm.Do(ctx, func(ctx context.Context) error {
			attempts.Add(1)
			q := e.tm.Querier(ctx)
			var n int64
			if err := q.QueryRow(ctx, `SELECT n FROM test_counters WHERE name = 'retry'`).Scan(&n); err != nil {
				return err
			}
			if err := e.outbox.Emit(ctx, events.New("retried", name+"-"+strconv.Itoa(int(attempts.Load())), events.WithKey(name))); err != nil {
				return err
			}
			if first {
				first = false
				read.Done()
				read.Wait()
			}
			_, err := q.Exec(ctx, `UPDATE test_counters SET n = $1 WHERE name = 'retry'`, n+1)
			return err
		}, txmanager.WithIsolation(pgx.RepeatableRead), txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 5}))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range []string{"a", "b"} {
		wg.Go(func() { errs[i] = run(name) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, int32(3), attempts.Load(), "one of the two transactions ran twice")
	var n int64
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT n FROM test_counters WHERE name = 'retry'`).Scan(&n))
	require.Equal(t, int64(2), n)

	waitFor(t, 10*time.Second, "two events", func() bool { return rec.count() >= 2 })
	time.Sleep(100 * time.Millisecond) // a third would arrive now
	msgs := rec.all()
	require.Len(t, msgs, 2, "one event per committed transaction: %v", payloadsOf(msgs))
	keys := map[string]bool{}
	for _, m := range msgs {
		keys[m.Metadata.Get(events.MetadataKey)] = true
	}
	assert.Equal(t, map[string]bool{"a": true, "b": true}, keys)
	assert.Zero(t, outboxCount(t, e.pool))
}

func TestWriteInAPgxTransactionOfOnesOwn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, e.outbox.Write(ctx, tx, events.New("own-tx", 1), events.New("own-tx", 2)))
	assert.Zero(t, outboxCount(t, e.pool), "not visible before the commit")
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, 2, outboxCount(t, e.pool))
}

// TestRelaysAreNotifiedAfterCommitOutsideTheTransaction: the NOTIFY that wakes the
// relays names the committed events' partitions and arrives once they are visible; it
// runs after COMMIT without touching the durability of the transaction, or of the
// connection's later ones; and a rolled-back Do notifies nobody.
func TestRelaysAreNotifiedAfterCommitOutsideTheTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	listener := pgtest.Conn(t)
	_, err := listener.Exec(ctx, "LISTEN "+events.NotifyChannel)
	require.NoError(t, err)

	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 1 // every Do and the check below on one connection
	pool := pgtest.NewPool(t, cfg)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)

	err = tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("notified", 1, events.WithKey("k")))
	})
	require.NoError(t, err)
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wait)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(int(events.PartitionOf("k", uuid.Nil))), n.Payload)
	var visible int
	require.NoError(t, listener.QueryRow(ctx, "SELECT count(*) FROM uno_outbox").Scan(&visible))
	assert.Equal(t, 1, visible, "the event is visible when its notification arrives")

	var syncCommit string
	require.NoError(t, pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit))
	assert.Equal(t, "on", syncCommit, "the connection's later transactions wait for their flush")
	err = tm.Do(ctx, func(ctx context.Context) error {
		return tm.Querier(ctx).QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&syncCommit)
	})
	require.NoError(t, err)
	assert.Equal(t, "on", syncCommit)

	errRollback := errors.New("roll back")
	err = tm.Do(ctx, func(ctx context.Context) error {
		if err := e.outbox.Emit(ctx, events.New("notified", 2, events.WithKey("k"))); err != nil {
			return err
		}
		_, err := tm.Querier(ctx).Exec(ctx, "SELECT 1")
		if err != nil {
			return err
		}
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	quiet, cancelQuiet := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelQuiet()
	_, err = listener.WaitForNotification(quiet)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no notification for a rolled-back Do")
}
