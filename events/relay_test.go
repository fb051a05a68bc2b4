package events_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/tests/pgtest"
)

// tracker is the publisher of several relays at once: it records which relay has
// which message in flight, and fails the test if two relays ever hold the same one.
type tracker struct {
	mu        sync.Mutex
	inflight  map[string]string // message UUID → relay
	delivered map[string]int    // message UUID → deliveries
	seqs      map[string][]int  // key → sequence numbers, in publish order
	byRelay   map[string]int
	overlaps  []string
	total     int
}

func newTracker() *tracker {
	return &tracker{
		inflight:  map[string]string{},
		delivered: map[string]int{},
		seqs:      map[string][]int{},
		byRelay:   map[string]int{},
	}
}

type trackedPublisher struct {
	tr    *tracker
	relay string
}

func (p trackedPublisher) Publish(_ string, msgs ...*message.Message) error {
	tr := p.tr
	tr.mu.Lock()
	for _, m := range msgs {
		if other, ok := tr.inflight[m.UUID]; ok {
			tr.overlaps = append(tr.overlaps, fmt.Sprintf("%s in flight at %s and %s", m.UUID, other, p.relay))
		}
		tr.inflight[m.UUID] = p.relay
	}
	tr.mu.Unlock()
	// Widen the window in which a second relay could send the same rows.
	time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, m := range msgs {
		delete(tr.inflight, m.UUID)
		tr.delivered[m.UUID]++
		seq, _ := strconv.Atoi(string(m.Payload))
		key := m.Metadata.Get(events.MetadataKey)
		tr.seqs[key] = append(tr.seqs[key], seq)
		tr.byRelay[p.relay]++
		tr.total++
	}
	return nil
}

func (trackedPublisher) Close() error { return nil }

func TestTwoRelaysShareTheWorkNeverSendARowTwiceAndKeepKeyOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := newTracker()
	var relays []*events.Relay
	for _, name := range []string{"relay-a", "relay-b"} {
		relay, err := events.NewRelay(e.pool, trackedPublisher{tr: tr, relay: name}, events.RelayConfig{
			ID: name, BatchSize: 200, Logger: quietLogger(t), // the default lease
		})
		require.NoError(t, err)
		runRelay(t, relay)
		relays = append(relays, relay)
	}
	waitFor(t, 20*time.Second, "the relays to share the partitions", func() bool {
		held := 0
		for _, r := range relays {
			s, err := r.Stats(ctx)
			require.NoError(t, err)
			if s.Partitions == 0 {
				return false
			}
			held += s.Partitions
		}
		return held == events.Partitions
	})

	// 10,000 events under 200 keys, 100 per transaction; event g is number g/200 of
	// key g%200, and transactions commit one after the other.
	const total, keys, perTx = 10_000, 200, 100
	for tx := 0; tx < total/perTx; tx++ {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			evs := make([]events.Event, 0, perTx)
			for g := tx * perTx; g < (tx+1)*perTx; g++ {
				evs = append(evs, events.New("orders", g/keys, events.WithKey("key-"+strconv.Itoa(g%keys))))
			}
			return e.outbox.Emit(ctx, evs...)
		}))
	}
	waitFor(t, 60*time.Second, "every event", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.delivered) == total
	})
	time.Sleep(50 * time.Millisecond)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	assert.Empty(t, tr.overlaps, "no message is ever in flight at two relays")
	assert.Equal(t, total, tr.total, "no message is delivered twice")
	for id, n := range tr.delivered {
		if n != 1 {
			t.Errorf("message %s delivered %d times", id, n)
		}
	}
	require.Len(t, tr.seqs, keys)
	for key, seqs := range tr.seqs {
		for i, s := range seqs {
			if s != i {
				t.Errorf("key %s: events out of order: %v", key, seqs)
				break
			}
		}
	}
	assert.Positive(t, tr.byRelay["relay-a"], "relay-a published")
	assert.Positive(t, tr.byRelay["relay-b"], "relay-b published")
	t.Logf("published by relay-a: %d, relay-b: %d", tr.byRelay["relay-a"], tr.byRelay["relay-b"])
	assert.Zero(t, outboxCount(t, e.pool))
}

// flakyPublisher fails every message of key poison, and the first failures of the
// first message of key flaky.
type flakyPublisher struct {
	*recorder
	mu          sync.Mutex
	flakyFails  int
	firstFlaky  string
	poisonTries int

	fine, fineTotal       int
	poisonTriesAtLastFine int
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	for _, m := range msgs {
		switch m.Metadata.Get(events.MetadataKey) {
		case "poison":
			p.poisonTries++
			p.mu.Unlock()
			return errors.New("broker rejects poison")
		case "flaky":
			if m.UUID == p.firstFlaky && p.flakyFails < 2 {
				p.flakyFails++
				p.mu.Unlock()
				return errors.New("transient failure")
			}
		}
	}
	defer p.mu.Unlock()
	if err := p.recorder.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataTopic) == "fine" {
			p.fine++
			if p.fine == p.fineTotal {
				p.poisonTriesAtLastFine = p.poisonTries
			}
		}
	}
	return nil
}

func TestPoisonEventGoesToDeadLettersWhileOtherKeysFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var evs []events.Event
	poison := []events.Event{
		events.New("poison", "p0", events.WithKey("poison")),
		events.New("poison", "p1", events.WithKey("poison")),
	}
	flaky := []events.Event{
		events.New("flaky", "f0", events.WithKey("flaky")),
		events.New("flaky", "f1", events.WithKey("flaky")),
		events.New("flaky", "f2", events.WithKey("flaky")),
	}
	evs = append(evs, poison[0], flaky[0])
	for i := 0; i < 10; i++ {
		for k := 0; k < 5; k++ {
			evs = append(evs, events.New("fine", fmt.Sprintf("k%d-%d", k, i), events.WithKey(fmt.Sprintf("k%d", k))))
		}
	}
	evs = append(evs, poison[1], flaky[1], flaky[2])
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, evs...) }))

	pub := &flakyPublisher{recorder: newRecorder(), firstFlaky: flaky[0].ID.String(), fineTotal: 50}
	relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{
		// A second between attempts: the other keys' 50 events go out well within the
		// poison event's first retry, also on a loaded CI machine.
		LeaseDuration: time.Second, MaxAttempts: 3, RetryBackoff: time.Second,
		MaxRetryBackoff: time.Second, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)

	fine := func() []string {
		var out []string
		for _, m := range pub.all() {
			if m.Metadata.Get(events.MetadataTopic) == "fine" {
				out = append(out, string(m.Payload))
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, "the events of the other keys", func() bool { return len(fine()) == 50 })
	// When the last of them went out, the first poison event was still at its first
	// attempt (a batch Publish and its one-by-one retry): it held nothing else back.
	pub.mu.Lock()
	assert.LessOrEqual(t, pub.poisonTriesAtLastFine, 2, "the other keys did not wait for the poison event's retries")
	pub.mu.Unlock()

	waitFor(t, 20*time.Second, "both poison events in the dead letters", func() bool {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_dead_letters`).Scan(&n))
		return n == 2
	})
	waitFor(t, 20*time.Second, "the flaky key", func() bool { return len(pub.all()) == 53 })

	// Order within each key, retries included.
	perKey := map[string][]string{}
	for _, m := range pub.all() {
		k := m.Metadata.Get(events.MetadataKey)
		perKey[k] = append(perKey[k], string(m.Payload))
	}
	assert.Equal(t, []string{`"f0"`, `"f1"`, `"f2"`}, perKey["flaky"])
	for k := 0; k < 5; k++ {
		var want []string
		for i := 0; i < 10; i++ {
			want = append(want, fmt.Sprintf(`"k%d-%d"`, k, i))
		}
		assert.Equal(t, want, perKey[fmt.Sprintf("k%d", k)])
	}
	assert.NotContains(t, perKey, "poison")

	rows, err := e.pool.Query(ctx, `SELECT event_id, attempts, last_error, topic, key FROM uno_dead_letters ORDER BY outbox_id, id`)
	require.NoError(t, err)
	var dead []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		var attempts int32
		var lastErr, topic, key string
		require.NoError(t, rows.Scan(&id, &attempts, &lastErr, &topic, &key))
		assert.Equal(t, int32(3), attempts)
		assert.Contains(t, lastErr, "broker rejects poison")
		assert.Equal(t, "poison", key)
		dead = append(dead, id)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []uuid.UUID{poison[0].ID, poison[1].ID}, dead)
	assert.Zero(t, outboxCount(t, e.pool))
	s, err := relay.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), s.DeadLettered)
	assert.Equal(t, uint64(53), s.Published)
	assert.Equal(t, int64(2), s.DeadLetters)
}

func TestRequeuedDeadLetterIsPublishedAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ev := events.New("requeue", 1, events.WithKey("k"))
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, ev) }))
	pub := &flakyPublisher{recorder: newRecorder()}
	failing := true
	var mu sync.Mutex
	pub.recorder.failWith = func(*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("down")
		}
		return nil
	}
	relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{
		LeaseDuration: time.Second, MaxAttempts: 1, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)
	var deadID int64
	waitFor(t, 10*time.Second, "the dead letter", func() bool {
		return e.pool.QueryRow(ctx, `SELECT id FROM uno_dead_letters`).Scan(&deadID) == nil
	})
	mu.Lock()
	failing = false
	mu.Unlock()
	n, err := events.Requeue(ctx, e.pool, deadID)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	waitFor(t, 10*time.Second, "the requeued event", func() bool { return pub.count() == 1 })
	assert.Equal(t, ev.ID.String(), pub.all()[0].UUID)
}

func TestRelayMessageCarriesTheEvent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	ev := events.New("carried", map[string]string{"x": "y"}, events.WithKey("k1"), events.WithType("T"),
		events.WithMetadata("trace_id", "abc"), events.WithMetadata(events.MetadataTopic, "spoofed"), events.WithOccurredAt(at))
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, ev) }))
	rec := deliveries(t, e, events.RelayConfig{Logger: quietLogger(t)})
	waitFor(t, 10*time.Second, "the event", func() bool { return rec.count() == 1 })
	m := rec.all()[0]
	assert.Equal(t, ev.ID.String(), m.UUID)
	assert.JSONEq(t, `{"x":"y"}`, string(m.Payload))
	assert.Equal(t, message.Metadata{
		events.MetadataTopic:      "carried",
		events.MetadataKey:        "k1",
		events.MetadataType:       "T",
		events.MetadataOccurredAt: "2025-01-02T03:04:05.000006Z",
		"trace_id":                "abc",
	}, m.Metadata)
	rec.mu.Lock()
	assert.Equal(t, map[string]int{"carried": 1}, rec.byTopic)
	rec.mu.Unlock()
}

func TestRelayLagAndStats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("lag", 1), events.New("lag", 2), events.New("lag", 3))
	}))
	time.Sleep(20 * time.Millisecond)
	lag, err := events.ReadLag(ctx, e.pool)
	require.NoError(t, err)
	assert.Equal(t, int64(3), lag.Pending)
	assert.Positive(t, lag.Oldest)
	assert.Zero(t, lag.Retrying)

	rec := newRecorder()
	relay, err := events.NewRelay(e.pool, rec, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)
	waitFor(t, 10*time.Second, "delivery", func() bool { return rec.count() == 3 })
	waitFor(t, 10*time.Second, "an empty outbox", func() bool {
		l, err := relay.Lag(ctx)
		require.NoError(t, err)
		return l.Pending == 0
	})
	s, err := relay.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), s.Published)
	assert.Equal(t, events.Partitions, s.Partitions)
	assert.Equal(t, 1, s.Relays)
	assert.Zero(t, s.Oldest)
}

func TestRelayRunStopsCleanly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 8
	pool := pgtest.NewPool(t, cfg) // the pool's cleanup fails the test if a connection is still acquired
	gc := events.NewGoChannel(nil)
	defer gc.Close()
	relay, err := events.NewRelay(pool, gc, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)

	for round := 0; round < 2; round++ { // a stopped relay can run again
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(runCtx) }()
		waitFor(t, 10*time.Second, "the relay to hold partitions", func() bool {
			s, err := relay.Stats(ctx)
			require.NoError(t, err)
			return s.Partitions == events.Partitions
		})
		assert.ErrorIs(t, relay.Run(ctx), events.ErrRelayRunning)
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return e.outbox.Emit(ctx, events.New("nobody-listens", 1))
		}))
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		assert.Zero(t, pool.Stat().AcquiredConns(), "the relay's connections, LISTEN included, are back in the pool")
		var owned, relays int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT
	(SELECT count(*) FROM uno_outbox_leases WHERE owner IS NOT NULL),
	(SELECT count(*) FROM uno_outbox_relays)`).Scan(&owned, &relays))
		assert.Zero(t, owned, "the leases are given back")
		assert.Zero(t, relays, "the relay unregistered")
	}
}

func TestRelayReportsMissingTables(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS no_tables`)
	require.NoError(t, err)
	cfg := pgtest.PoolConfig(t)
	cfg.ConnConfig.RuntimeParams["search_path"] = "no_tables"
	pool := pgtest.NewPool(t, cfg)
	relay, err := events.NewRelay(pool, newRecorder(), events.RelayConfig{Logger: quietLogger(t)})
	require.NoError(t, err)
	err = relay.Run(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "schema.Migrate")
}

func TestRelayConfigValidate(t *testing.T) {
	_, err := events.NewRelay(nil, newRecorder(), events.RelayConfig{})
	require.Error(t, err)
	e := newEnv(t)
	_, err = events.NewRelay(e.pool, nil, events.RelayConfig{})
	require.Error(t, err)
	_, err = events.NewRelay(e.pool, newRecorder(), events.RelayConfig{
		BatchSize: -1, Workers: events.Partitions + 1, MaxAttempts: -2, LeaseDuration: time.Millisecond,
		RetryBackoff: time.Minute, MaxRetryBackoff: time.Second,
	})
	require.Error(t, err)
	for _, want := range []string{"BatchSize", "Workers", "MaxAttempts", "LeaseDuration", "MaxRetryBackoff"} {
		assert.True(t, strings.Contains(err.Error(), want), "error mentions %s: %v", want, err)
	}
	cfg := events.RelayConfig{}
	assert.Error(t, cfg.Validate(), "the zero config is invalid until NewRelay fills the defaults")
}
