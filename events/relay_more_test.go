package events_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
)

func TestRelayTakesOverTheLeasesOfADeadRelay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A relay that died holding every partition: its leases run for 4 more seconds.
	_, err := e.pool.Exec(ctx, `INSERT INTO uno_outbox_leases (partition, owner, expires_at)
SELECT g, 'ghost', now() + interval '4 seconds' FROM generate_series(0, $1::int - 1) g`, events.Partitions)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO uno_outbox_relays (id, expires_at) VALUES ('ghost', now() + interval '4 seconds')`)
	require.NoError(t, err)
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		var evs []events.Event
		for i := 0; i < 20; i++ {
			evs = append(evs, events.New("takeover", i, events.WithKey(strconv.Itoa(i%4))))
		}
		return e.outbox.Emit(ctx, evs...)
	}))

	rec := newRecorder()
	relay, err := events.NewRelay(e.pool, rec, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)
	waitFor(t, 10*time.Second, "the relay's first lease round", func() bool {
		s, err := relay.Stats(ctx)
		require.NoError(t, err)
		return s.Relays == 2
	})
	s, err := relay.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, s.Partitions, "the dead relay's leases are still valid")
	assert.Zero(t, rec.count(), "nothing is sent from partitions leased by another relay")

	waitFor(t, 20*time.Second, "every event after the leases expired", func() bool { return rec.count() == 20 })
	s, err = relay.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, events.Partitions, s.Partitions)
	assert.Equal(t, 1, s.Relays, "the dead relay is forgotten")
}

func TestRelayRecoversItsListenConnection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rec := newRecorder()
	relay, err := events.NewRelay(e.pool, rec, events.RelayConfig{
		LeaseDuration: time.Second, PollInterval: time.Hour, Logger: quietLogger(t), // no poll: only NOTIFY wakes it
	})
	require.NoError(t, err)
	runRelay(t, relay)
	emit := func(n int) {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return e.outbox.Emit(ctx, events.New("listen", n))
		}))
	}
	emit(1)
	waitFor(t, 10*time.Second, "the first event", func() bool { return rec.count() == 1 })

	// Kill the LISTEN session, as a server restart or a network cut would.
	var killed int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND query = 'LISTEN `+events.NotifyChannel+`' AND pid <> pg_backend_pid()`).Scan(&killed))
	require.Equal(t, 1, killed)
	emit(2) // may be committed before the relay listens again: it looks at every partition when it does
	waitFor(t, 20*time.Second, "the second event", func() bool { return rec.count() == 2 })
	emit(3)
	waitFor(t, 10*time.Second, "the third event", func() bool { return rec.count() == 3 })
}

func TestGoChannelHandlerRunsBeforeItsRowIsDeletedAndSeesKeyOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	var mu sync.Mutex
	seen := map[string][]int{}
	var missing []string
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, gc, "ordered", func(ctx context.Context, ev events.Received[int]) error {
			pending, err := events.ReadPending(ctx, e.pool, 0)
			if err != nil {
				return err
			}
			n := 0
			for _, p := range pending {
				if p.ID == ev.ID {
					n++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if n != 1 {
				missing = append(missing, ev.ID.String())
			}
			seen[ev.Key] = append(seen[ev.Key], ev.Payload)
			return nil
		})
		require.NoError(t, err)
	})
	relay, err := events.NewRelay(e.pool, gc, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)

	// Each handler run reads the whole outbox: a few hundred events keep it quick.
	const keys, perKey = 10, 25
	for i := 0; i < perKey; i++ {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			for k := 0; k < keys; k++ {
				if err := e.outbox.Emit(ctx, events.New("ordered", i, events.WithKey(fmt.Sprint(k)))); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	waitFor(t, 60*time.Second, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seen {
			n += len(s)
		}
		return n == keys*perKey
	})
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, missing, "a row is deleted only after its handler acknowledged it")
	for k := 0; k < keys; k++ {
		s := seen[fmt.Sprint(k)]
		for i, v := range s {
			if v != i {
				t.Errorf("key %d: out of order: %v", k, s)
				break
			}
		}
	}
}

// sameEnvelopeKeys returns a second key of the partition of key a, so that one
// transaction's events of both share an envelope.
func sameEnvelopeKeys(t *testing.T, a string) string {
	t.Helper()
	p := events.PartitionOf(a, uuid.Nil)
	for i := 0; i < 10_000; i++ {
		if k := "other-" + strconv.Itoa(i); events.PartitionOf(k, uuid.Nil) == p {
			return k
		}
	}
	t.Fatal("no second key in the partition")
	return ""
}

// keyFailPublisher fails the messages whose UUID is in failing (up to fails[UUID]
// times; forever when negative) and records the others.
type keyFailPublisher struct {
	*recorder
	mu    sync.Mutex
	fails map[string]int
	tries map[string]int
}

func (p *keyFailPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	for _, m := range msgs {
		p.tries[m.UUID]++
		if n, ok := p.fails[m.UUID]; ok && (n < 0 || p.tries[m.UUID] <= n) {
			p.mu.Unlock()
			return errors.New("rejected " + string(m.Payload))
		}
	}
	p.mu.Unlock()
	return p.recorder.Publish(topic, msgs...)
}

func TestFailingEventHoldsOnlyItsKeyInsideAnEnvelope(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := sameEnvelopeKeys(t, "held")
	evs := []events.Event{
		events.New("t", "h0", events.WithKey("held")),
		events.New("t", "o0", events.WithKey(other)),
		events.New("t", "h1", events.WithKey("held")),
		events.New("t", "u0"), // no key: never held
		events.New("t", "o1", events.WithKey(other)),
	}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, evs...) }))
	require.Equal(t, 1, outboxRows(t, e.pool), "the five events share one envelope")
	// A second transaction: its envelope waits for h0 only through its event of key held.
	later := []events.Event{
		events.New("t", "h2", events.WithKey("held")),
		events.New("t", "o2", events.WithKey(other)),
	}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, later...) }))

	pub := &keyFailPublisher{recorder: newRecorder(), fails: map[string]int{evs[0].ID.String(): 2}, tries: map[string]int{}}
	relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{
		LeaseDuration: time.Second, MaxAttempts: 5, RetryBackoff: 300 * time.Millisecond,
		MaxRetryBackoff: 300 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)

	waitFor(t, 10*time.Second, "the events of the other keys", func() bool { return pub.count() >= 4 })
	got := payloadsOf(pub.all())
	assert.ElementsMatch(t, []string{`t/"o0"`, `t/"u0"`, `t/"o1"`, `t/"o2"`}, got[:4],
		"the other key and the event without key flow while h0 waits")
	waitFor(t, 10*time.Second, "every event", func() bool { return pub.count() == 7 })
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	perKey := map[string][]string{}
	for _, m := range pub.all() {
		k := m.Metadata.Get(events.MetadataKey)
		perKey[k] = append(perKey[k], string(m.Payload))
	}
	assert.Equal(t, map[string][]string{
		"held": {`"h0"`, `"h1"`, `"h2"`},
		other:  {`"o0"`, `"o1"`, `"o2"`},
		"":     {`"u0"`},
	}, perKey, "each event once, in order per key")
	pub.mu.Lock()
	assert.Equal(t, 3, pub.tries[evs[0].ID.String()])
	pub.mu.Unlock()
	assert.Zero(t, outboxRows(t, e.pool))
}

func TestDeadLetteredEventLetsTheRestOfItsEnvelopeGoOn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	evs := []events.Event{
		events.New("t", "a0", events.WithKey("k")),
		events.New("t", "poison", events.WithKey("k"), events.WithMetadata("trace", "x")),
		events.New("t", "a2", events.WithKey("k")),
	}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, evs...) }))
	pub := &keyFailPublisher{recorder: newRecorder(), fails: map[string]int{evs[1].ID.String(): -1}, tries: map[string]int{}}
	relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{
		LeaseDuration: time.Second, MaxAttempts: 3, RetryBackoff: 50 * time.Millisecond,
		MaxRetryBackoff: 50 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)
	waitFor(t, 10*time.Second, "the events around the poison", func() bool { return pub.count() == 2 })
	assert.Equal(t, []string{`t/"a0"`, `t/"a2"`}, payloadsOf(pub.all()), "a0 is not published again")

	var (
		id       uuid.UUID
		attempts int32
		md       map[string]string
		outboxID int64
	)
	waitFor(t, 5*time.Second, "the dead letter", func() bool {
		return e.pool.QueryRow(ctx, `SELECT event_id, attempts, metadata, outbox_id FROM uno_dead_letters`).
			Scan(&id, &attempts, &md, &outboxID) == nil
	})
	assert.Equal(t, evs[1].ID, id)
	assert.Equal(t, int32(3), attempts)
	assert.Equal(t, map[string]string{"trace": "x"}, md)
	assert.Positive(t, outboxID)
	waitFor(t, 5*time.Second, "an empty outbox", func() bool { return outboxRows(t, e.pool) == 0 })
	time.Sleep(100 * time.Millisecond) // a republished a0 would arrive now
	assert.Equal(t, []string{`t/"a0"`, `t/"a2"`}, payloadsOf(pub.all()), "a0 is delivered once")
}
