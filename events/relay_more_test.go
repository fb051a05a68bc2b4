package events_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
			var n int
			if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_outbox WHERE event_id = $1`, ev.ID).Scan(&n); err != nil {
				return err
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

	const keys, perKey = 20, 50
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
	waitFor(t, 30*time.Second, "every event", func() bool {
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
