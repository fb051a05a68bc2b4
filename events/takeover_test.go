package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
)

// takeoverBound is the documented takeover time of the default configuration: a
// SIGKILLed relay's partitions are published by another relay within it.
const takeoverBound = 5 * time.Second

// tableRecorder is a publisher that records every message in test_deliveries (one row
// per delivery, so duplicates show), as the relay of another process would.
type tableRecorder struct {
	pool  *pgxpool.Pool
	by    string
	mu    sync.Mutex
	first time.Time // first successful Publish
	delay time.Duration
}

func (p *tableRecorder) Publish(_ string, msgs ...*message.Message) error {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
	}
	time.Sleep(p.delay)
	if _, err := p.pool.Exec(context.Background(),
		`INSERT INTO test_deliveries (event_id, by) SELECT unnest($1::uuid[]), $2`, ids, p.by); err != nil {
		return err
	}
	p.mu.Lock()
	if p.first.IsZero() {
		p.first = time.Now()
	}
	p.mu.Unlock()
	return nil
}

func (p *tableRecorder) Close() error { return nil }

// TestHelperRelayProcess is not a test: run by TestRelayTakesOverFromASIGKILLedRelay
// as a child process, it runs a relay with the default configuration that records
// its deliveries in test_deliveries, says "running" on stdout, and runs until killed.
func TestHelperRelayProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "relay" {
		t.Skip("helper process: run by TestRelayTakesOverFromASIGKILLedRelay")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(helperURLEnv))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	relay, err := events.NewRelay(pool, &tableRecorder{pool: pool, by: "killed", delay: time.Millisecond},
		events.RelayConfig{ID: "doomed", BatchSize: 50, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	go func() { _ = relay.Run(ctx) }()
	<-relay.Running()
	fmt.Println("running")
	time.Sleep(time.Hour) // killed before
	os.Exit(3)
}

// A relay process is SIGKILLed while events flow; a relay started right after it
// publishes within the takeover bound, and every event is delivered (duplicates are
// counted and reported: delivery is at least once).
func TestRelayTakesOverFromASIGKILLedRelay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `DROP TABLE IF EXISTS test_deliveries;
CREATE TABLE test_deliveries (event_id uuid NOT NULL, by text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	require.NoError(t, err)

	kill := startHelper(t, "TestHelperRelayProcess", "relay", "running")

	// Events flow: 20 per transaction, every few milliseconds, until the end.
	var emittedMu sync.Mutex
	emitted := 0
	stopEmitting := make(chan struct{})
	emitDone := make(chan error, 1)
	go func() {
		for tx := 0; ; tx++ {
			select {
			case <-stopEmitting:
				emitDone <- nil
				return
			case <-time.After(3 * time.Millisecond):
			}
			err := e.tm.Do(ctx, func(ctx context.Context) error {
				evs := make([]events.Event, 0, 20)
				for i := 0; i < 20; i++ {
					evs = append(evs, events.New("stream", tx, events.WithKey("key-"+strconv.Itoa((tx+i)%40))))
				}
				return e.outbox.Emit(ctx, evs...)
			})
			if err != nil {
				emitDone <- err
				return
			}
			emittedMu.Lock()
			emitted += 20
			emittedMu.Unlock()
		}
	}()
	waitFor(t, 30*time.Second, "the helper relay to deliver", func() bool {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM test_deliveries`).Scan(&n))
		return n >= 500
	})

	killedAt := kill()

	rec := &tableRecorder{pool: e.pool, by: "survivor"}
	relay, err := events.NewRelay(e.pool, rec, events.RelayConfig{Logger: quietLogger(t)}) // the default lease
	require.NoError(t, err)
	runRelay(t, relay)
	waitFor(t, 2*takeoverBound, "the new relay's first delivery", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return !rec.first.IsZero()
	})
	rec.mu.Lock()
	takeover := rec.first.Sub(killedAt)
	rec.mu.Unlock()

	time.Sleep(200 * time.Millisecond) // a little more flow after the takeover
	close(stopEmitting)
	require.NoError(t, <-emitDone)
	emittedMu.Lock()
	total := emitted
	emittedMu.Unlock()
	waitFor(t, 60*time.Second, "every event", func() bool {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(DISTINCT event_id) FROM test_deliveries`).Scan(&n))
		return n == total
	})
	var deliveries, byKilled, bySurvivor int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE by = 'killed'),
	count(*) FILTER (WHERE by = 'survivor') FROM test_deliveries`).Scan(&deliveries, &byKilled, &bySurvivor))
	t.Logf("takeover %s after SIGKILL (bound %s); %d events, 0 lost, %d deliveries (%d by the killed relay, %d by the survivor), %d duplicates",
		takeover.Round(time.Millisecond), takeoverBound, total, deliveries, byKilled, bySurvivor, deliveries-total)
	assert.Less(t, takeover, takeoverBound, "the survivor publishes within the takeover bound")
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxCount(t, e.pool) == 0 })
}
