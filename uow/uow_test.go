package uow_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrateOnce sync.Once

type env struct {
	pool  *pgxpool.Pool
	tm    *txmanager.Manager
	units *uow.Manager
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pgtest.Pool(t)
	var err error
	migrateOnce.Do(func() {
		err = schema.MigratePool(context.Background(), pool)
		if err == nil {
			_, err = pool.Exec(context.Background(), `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`)
		}
	})
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), `TRUNCATE uno_outbox, uno_dead_letters, uno_inbox, notes`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	units, err := uow.NewManager(tm, nil)
	require.NoError(t, err)
	return &env{pool: pool, tm: tm, units: units}
}

func (e *env) note(ctx context.Context, body string) error {
	_, err := e.tm.Querier(ctx).Exec(ctx, `INSERT INTO notes (body) VALUES ($1)`, body)
	return err
}

func (e *env) notes(t *testing.T) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT body FROM notes ORDER BY id`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// deliver runs a relay over the outbox into a GoChannel until the event "end" of topic
// "notes" arrives, and returns the payload strings received on topic "notes", in order.
// Every test emits its events under one key, so the relay keeps their order and "end",
// committed last, is delivered last.
func (e *env) deliver(t *testing.T) []string {
	t.Helper()
	e.commitEnd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gc := events.NewGoChannel(nil)
	defer gc.Close()
	msgs, err := gc.Subscribe(ctx, "notes")
	require.NoError(t, err)

	relay, err := events.NewRelay(e.pool, gc, events.RelayConfig{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	<-relay.Running()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()

	var got []string
	for {
		select {
		case msg := <-msgs:
			ev, err := events.Decode[string](msg, nil)
			require.NoError(t, err)
			msg.Ack()
			if ev.Payload == "end" {
				return got
			}
			got = append(got, ev.Payload)
		case <-ctx.Done():
			t.Fatalf("the end event was not delivered; got %v", got)
		}
	}
}

func (e *env) commitEnd(t *testing.T) {
	t.Helper()
	require.NoError(t, e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		return u.Emit(ev("end"))
	}))
}

func ev(body string) events.Event {
	return events.New("notes", body, events.WithKey("k"))
}

func TestCommittedDoWritesWorkAndDeliversEvents(t *testing.T) {
	e := newEnv(t)
	err := e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		if err := e.note(ctx, "a"); err != nil {
			return err
		}
		if err := u.Emit(ev("a1"), ev("a2")); err != nil {
			return err
		}
		return uow.Emit(ctx, ev("a3"))
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, e.notes(t))
	assert.Equal(t, []string{"a1", "a2", "a3"}, e.deliver(t))
}

func TestRolledBackDoPublishesNothing(t *testing.T) {
	e := newEnv(t)
	boom := errors.New("boom")
	err := e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		if err := e.note(ctx, "gone"); err != nil {
			return err
		}
		if err := u.Emit(ev("gone")); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Empty(t, e.notes(t))
	assert.Empty(t, e.deliver(t), "only the end event, committed afterwards, may arrive")
}

func TestRolledBackNestedScopeDropsOnlyItsEvents(t *testing.T) {
	e := newEnv(t)
	boom := errors.New("nested failure")
	err := e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		if err := u.Emit(ev("outer-before")); err != nil {
			return err
		}
		require.NoError(t, e.note(ctx, "outer"))
		// A nested unit of work and a plain nested transaction scope, both failing.
		nestedErr := e.units.Do(ctx, func(ctx context.Context, inner *uow.UnitOfWork) error {
			require.NoError(t, e.note(ctx, "nested-uow"))
			require.NoError(t, inner.Emit(ev("nested-uow")))
			return boom
		}, txmanager.Nested())
		require.ErrorIs(t, nestedErr, boom)
		nestedErr = e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, e.note(ctx, "nested-tm"))
			require.NoError(t, uow.Emit(ctx, ev("nested-tm")))
			return boom
		}, txmanager.Nested())
		require.ErrorIs(t, nestedErr, boom)
		// A nested scope that succeeds keeps its events.
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return uow.Emit(ctx, ev("nested-ok"))
		}, txmanager.Nested()))
		return u.Emit(ev("outer-after"))
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"outer"}, e.notes(t))
	assert.Equal(t, []string{"outer-before", "nested-ok", "outer-after"}, e.deliver(t))
}

func TestRetriedDoDeliversEachEventOnce(t *testing.T) {
	e := newEnv(t)
	attempts := 0
	err := e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		attempts++
		if err := e.note(ctx, "n"); err != nil {
			return err
		}
		if err := u.Emit(ev("once")); err != nil {
			return err
		}
		if attempts == 1 {
			// A serialization failure raised by the server, as a conflict would.
			_, err := e.tm.Querier(ctx).Exec(ctx,
				`DO $$ BEGIN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = '40001'; END $$`)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			return err
		}
		return nil
	}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond}))
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
	assert.Equal(t, []string{"n"}, e.notes(t))
	assert.Equal(t, []string{"once"}, e.deliver(t))
}

func TestEventsReachTheOutboxOnlyAtCommit(t *testing.T) {
	e := newEnv(t)
	err := e.units.Do(context.Background(), func(ctx context.Context, u *uow.UnitOfWork) error {
		require.NoError(t, e.note(ctx, "x"))
		require.NoError(t, u.Emit(ev("x")))
		lag, err := events.ReadLag(context.Background(), e.pool)
		require.NoError(t, err)
		assert.Zero(t, lag.Pending, "an event is visible before its transaction commits")
		return nil
	})
	require.NoError(t, err)
	lag, err := events.ReadLag(context.Background(), e.pool)
	require.NoError(t, err)
	assert.Equal(t, int64(1), lag.Pending)
}

func TestEmitOutsideAUnitOfWork(t *testing.T) {
	e := newEnv(t)
	err := uow.Emit(context.Background(), ev("nowhere"))
	require.ErrorIs(t, err, uow.ErrNoUnitOfWork)

	// A transaction that is not a unit of work has no outbox to write to.
	err = e.tm.Do(context.Background(), func(ctx context.Context) error {
		return uow.Emit(ctx, ev("nowhere"))
	})
	require.ErrorIs(t, err, uow.ErrNoUnitOfWork)

	_, ok := uow.FromContext(context.Background())
	assert.False(t, ok)
}

func TestDoRejectsNilFunction(t *testing.T) {
	e := newEnv(t)
	require.Error(t, e.units.Do(context.Background(), nil))
	_, err := uow.NewManager(nil, nil)
	require.Error(t, err)
}
