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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/tests/pgtest"
)

// With the default wiring (GoChannel and a router handler that returns an error), a
// failing event is a failed delivery: it is retried after back-off and moves to the
// dead letters after MaxAttempts, while the other keys of its topic and another topic
// flow, in order; requeued, it is delivered once the handler succeeds.
func TestRouterHandlerFailingOnOneKeyDeadLettersWhileOtherKeysAndTopicsFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })

	var (
		mu         sync.Mutex
		seqs       = map[string][]int{} // topic/key → payloads, in handling order
		poisonRuns atomic.Int32
		healed     atomic.Bool
		delivered  atomic.Int32
	)
	record := func(topic string) func(context.Context, events.Received[int]) error {
		return func(_ context.Context, ev events.Received[int]) error {
			if ev.Key == "poison" {
				poisonRuns.Add(1)
				if !healed.Load() {
					return errors.New("the handler cannot process this event")
				}
			}
			mu.Lock()
			seqs[topic+"/"+ev.Key] = append(seqs[topic+"/"+ev.Key], ev.Payload)
			mu.Unlock()
			if ev.Key != "poison" {
				delivered.Add(1)
			}
			return nil
		}
	}
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, gc, "orders", record("orders"))
		require.NoError(t, err)
		_, err = events.Handle(r, gc, "audit", record("audit"))
		require.NoError(t, err)
	})
	// The poison event waits 2 s, 4 s and 4 s between its attempts: 10 s in which the
	// 1,000 others must flow, which a loaded CI machine under -race also manages.
	const maxAttempts = 4
	relay, err := events.NewRelay(e.pool, gc, events.RelayConfig{
		MaxAttempts: maxAttempts, RetryBackoff: 2 * time.Second, MaxRetryBackoff: 4 * time.Second,
		Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)

	// The poison event first, then 1,000 events: 20 keys on orders (the poison's
	// topic), 20 on audit, 10 per transaction.
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("orders", -1, events.WithKey("poison")))
	}))
	const total, keys = 1000, 20
	for tx := 0; tx < total/10; tx++ {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			evs := make([]events.Event, 0, 10)
			for g := tx * 10; g < (tx+1)*10; g++ {
				topic := "orders"
				if g%2 == 1 {
					topic = "audit"
				}
				evs = append(evs, events.New(topic, g/(2*keys), events.WithKey("k"+strconv.Itoa(g/2%keys))))
			}
			return e.outbox.Emit(ctx, evs...)
		}))
	}
	waitFor(t, 30*time.Second, "the 1,000 other events", func() bool { return delivered.Load() == total })
	var dead int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_dead_letters`).Scan(&dead))
	assert.Zero(t, dead, "the other events were delivered while the poison event was still being retried")

	var deadID int64
	var attempts int
	waitFor(t, 60*time.Second, "the poison event in uno_dead_letters", func() bool {
		return e.pool.QueryRow(ctx, `SELECT id, attempts FROM uno_dead_letters`).Scan(&deadID, &attempts) == nil
	})
	assert.Equal(t, maxAttempts, attempts)
	assert.Equal(t, int32(maxAttempts), poisonRuns.Load(), "one handler run per attempt: no redelivery loop")
	mu.Lock()
	for k, s := range seqs {
		for i, v := range s {
			if v != i {
				t.Errorf("%s out of order: %v", k, s)
				break
			}
		}
	}
	assert.Len(t, seqs, 2*keys)
	mu.Unlock()

	healed.Store(true)
	n, err := events.Requeue(ctx, e.pool, deadID)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	waitFor(t, 30*time.Second, "the requeued event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs["orders/poison"]) == 1
	})
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxCount(t, e.pool) == 0 })
	assert.Equal(t, int32(maxAttempts+1), poisonRuns.Load())
}

// blockingPublisher never returns from Publish for a message of key "stuck" until
// release is closed; it records the others.
type blockingPublisher struct {
	*recorder
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *blockingPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if m.Metadata.Get(events.MetadataKey) == "stuck" {
			p.once.Do(func() { close(p.entered) })
			<-p.release
			return errors.New("released")
		}
	}
	return p.recorder.Publish(topic, msgs...)
}

// stopWithin cancels a relay's Run and returns how long it took to return.
func stopWithin(t *testing.T, cancel func(), done <-chan error, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(bound + 10*time.Second):
		t.Fatalf("Run did not return within %s of its context ending", bound+10*time.Second)
	}
	took := time.Since(start)
	assert.Less(t, took, bound, "Run returns within its shutdown timeout")
	return took
}

// shutdownCase runs a relay on its own pool with publisher pub, commits an event that
// is delivered and one of key "stuck" that pub never finishes, stops the relay, and
// checks the shutdown: bounded, no connection left acquired, the delivered event gone,
// the stuck one still in the outbox.
func shutdownCase(t *testing.T, e *env, pub message.Publisher, delivered func() int, entered <-chan struct{}) {
	ctx := context.Background()
	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 8
	pool := pgtest.NewPool(t, cfg)
	const timeout = time.Second
	relay, err := events.NewRelay(pool, pub, events.RelayConfig{ShutdownTimeout: timeout, Logger: quietLogger(t)})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	<-relay.Running()

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("work", "fine", events.WithKey("fine")))
	}))
	waitFor(t, 10*time.Second, "the first event delivered and acknowledged", func() bool {
		return delivered() == 1 && outboxCount(t, e.pool) == 0
	})
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("work", "stuck", events.WithKey("stuck")))
	}))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck event was not published")
	}

	took := stopWithin(t, cancel, done, timeout+time.Second) // a margin for a loaded machine
	t.Logf("Run returned %s after its context ended (shutdown timeout %s)", took, timeout)
	assert.Zero(t, pool.Stat().AcquiredConns(), "every connection the relay took is back")
	assert.Equal(t, 1, outboxCount(t, e.pool), "the unacknowledged event stays in the outbox")
	var owned int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_outbox_leases WHERE owner IS NOT NULL`).Scan(&owned))
	// Only the partitions of the abandoned worker's batch (at most its share, 32/4)
	// keep their lease, until it expires.
	assert.True(t, owned >= 1 && owned <= events.Partitions/4, "%d leases kept", owned)
}

func TestRunReturnsWithinShutdownTimeoutWhenPublishNeverReturns(t *testing.T) {
	e := newEnv(t)
	pub := &blockingPublisher{recorder: newRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(pub.release) }) // the abandoned goroutine ends (goleak checks)
	shutdownCase(t, e, pub, pub.count, pub.entered)
}

func TestRunReturnsWithinShutdownTimeoutWhenAHandlerBlocksForever(t *testing.T) {
	e := newEnv(t)
	gc := events.NewGoChannel(nil)
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	var handled atomic.Int32
	// Cleanups run last first: release the handler, then close the router and gc.
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, gc, "work", func(ctx context.Context, ev events.Received[string]) error {
			if ev.Key == "stuck" {
				once.Do(func() { close(entered) })
				<-release
				return nil
			}
			handled.Add(1)
			return nil
		})
		require.NoError(t, err)
	})
	var freeOnce sync.Once
	free := func() { freeOnce.Do(func() { close(release) }) }
	t.Cleanup(func() { _ = gc.Close() })
	t.Cleanup(free)
	shutdownCase(t, e, gc, func() int { return int(handled.Load()) }, entered)

	// A new relay delivers the event the stopped one did not acknowledge, once the
	// handler is free: at least once.
	free()
	rec := deliveries(t, e, events.RelayConfig{LeaseDuration: time.Second})
	waitFor(t, 20*time.Second, "the stuck event, delivered again", func() bool { return rec.count() == 1 })
}

// GoChannel.Close returns although a router handler never does.
func TestGoChannelCloseReturnsWhileAHandlerBlocksForever(t *testing.T) {
	gc := events.NewGoChannel(nil)
	release := make(chan struct{})
	entered := make(chan struct{})
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, gc, "t", func(ctx context.Context, ev events.Received[string]) error {
			close(entered)
			<-release
			return nil
		})
		require.NoError(t, err)
	})
	t.Cleanup(func() { close(release) })
	published := make(chan error, 1)
	go func() { published <- gc.Publish("t", message.NewMessage("m1", []byte(`"x"`))) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- gc.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("GoChannel.Close did not return while a handler blocked")
	}
	require.ErrorIs(t, <-published, events.ErrNotAcknowledged)
}

// Running is closed once the relay listens and holds its partitions: an event
// committed right then is published at once, not at the next poll.
func TestRelayRunningMeansListeningWithItsPartitions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rec := newRecorder()
	relay, err := events.NewRelay(e.pool, rec, events.RelayConfig{PollInterval: time.Hour, Logger: quietLogger(t)})
	require.NoError(t, err)
	select {
	case <-relay.Running():
		t.Fatal("Running is closed before Run")
	default:
	}
	runRelay(t, relay) // waits on Running
	s, err := relay.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, events.Partitions, s.Partitions, "the first lease round is part of start-up")
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("ready", 1, events.WithKey("k")))
	}))
	waitFor(t, 10*time.Second, "the event, woken by NOTIFY (the poll is an hour)", func() bool { return rec.count() == 1 })
}

// The relay's connections are terminated again and again while 20,000 events flow:
// none is lost.
func TestRelayLosesNothingWhenItsConnectionsAreTerminated(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := pgtest.PoolConfig(t)
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = "uno-relay-under-fire"
	pool := pgtest.NewPool(t, cfg)
	tr := newTracker()
	relay, err := events.NewRelay(pool, trackedPublisher{tr: tr, relay: "r"}, events.RelayConfig{
		BatchSize: 500, PollInterval: 100 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)

	const total, perTx, keys = 20_000, 100, 50
	emitted := make(chan error, 1)
	go func() {
		for tx := 0; tx < total/perTx; tx++ {
			err := e.tm.Do(ctx, func(ctx context.Context) error {
				evs := make([]events.Event, 0, perTx)
				for g := tx * perTx; g < (tx+1)*perTx; g++ {
					evs = append(evs, events.New("fire", g/keys, events.WithKey("key-"+strconv.Itoa(g%keys))))
				}
				return e.outbox.Emit(ctx, evs...)
			})
			if err != nil {
				emitted <- err
				return
			}
		}
		emitted <- nil
	}()
	terminated := 0
	for i := 0; i < 15; i++ {
		time.Sleep(80 * time.Millisecond)
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = 'uno-relay-under-fire' AND pid <> pg_backend_pid()`).Scan(&n))
		terminated += n
	}
	require.NoError(t, <-emitted)
	waitFor(t, 60*time.Second, "every event", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.delivered) == total
	})
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxCount(t, e.pool) == 0 })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t.Logf("terminated %d relay connections; %d events delivered, %d deliveries (%d duplicates)",
		terminated, len(tr.delivered), tr.total, tr.total-len(tr.delivered))
	assert.Positive(t, terminated)
	assert.Len(t, tr.delivered, total, "0 lost")
	for key, seqs := range tr.seqs {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] && !seen(seqs[:i], seqs[i]) {
				t.Errorf("key %s: a new event before an earlier one: %v", key, seqs)
				break
			}
		}
	}
}

// seen reports whether v is in s (a duplicate may come back after later events).
func seen(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
