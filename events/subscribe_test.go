package events_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/txmanager"
)

// startRouter runs a router with the handlers setup adds; it is closed at cleanup
// (after the relays the test starts later, which stop first).
func startRouter(t *testing.T, setup func(r *message.Router)) *message.Router {
	t.Helper()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	setup(router)
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, router.Close())
		require.NoError(t, <-done)
	})
	select {
	case <-router.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("the router did not start")
	}
	return router
}

func counter(t *testing.T, e *env, name string) int64 {
	t.Helper()
	var n int64
	err := e.pool.QueryRow(context.Background(), `SELECT COALESCE((SELECT n FROM test_counters WHERE name = $1), 0)`, name).Scan(&n)
	require.NoError(t, err)
	return n
}

const bumpSQL = `INSERT INTO test_counters (name, n) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET n = test_counters.n + 1`

type Debited struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

func TestHandleWithInboxEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	inbox, err := events.NewInbox(e.tm, events.InboxConfig{Logger: quietLogger(t)})
	require.NoError(t, err)

	var mu sync.Mutex
	var got []events.Received[Debited]
	var followUps atomic.Int32
	startRouter(t, func(r *message.Router) {
		r.AddMiddleware(inbox.Middleware)
		_, err := events.Handle(r, gc, "account.debited", func(ctx context.Context, ev events.Received[Debited]) error {
			if !txmanager.InTransaction(ctx) {
				return errors.New("the handler's ctx carries no transaction")
			}
			// The handler's writes and the events it emits join the inbox transaction.
			if _, err := e.tm.Querier(ctx).Exec(ctx, bumpSQL, "debited:"+ev.Payload.Account); err != nil {
				return err
			}
			if err := e.outbox.Emit(ctx, events.New("account.audited", ev.Payload, events.WithKey(ev.Key))); err != nil {
				return err
			}
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
			return nil
		})
		require.NoError(t, err)
		_, err = events.Handle(r, gc, "account.audited", func(ctx context.Context, ev events.Received[Debited]) error {
			followUps.Add(1)
			return nil
		})
		require.NoError(t, err)
	})
	relay, err := events.NewRelay(e.pool, gc, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)

	ev := events.New("account.debited", Debited{Account: "a1", Amount: 5}, events.WithKey("a1"), events.WithType("Debited"))
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.outbox.Emit(ctx, ev) }))

	waitFor(t, 10*time.Second, "the follow-up event", func() bool { return followUps.Load() == 1 })
	mu.Lock()
	require.Len(t, got, 1)
	r := got[0]
	mu.Unlock()
	assert.Equal(t, ev.ID, r.ID)
	assert.Equal(t, ev.ID.String(), r.MessageUUID)
	assert.Equal(t, "account.debited", r.Topic)
	assert.Equal(t, "a1", r.Key)
	assert.Equal(t, "Debited", r.Type)
	assert.True(t, ev.OccurredAt.Equal(r.OccurredAt), "occurred_at %s, want %s", r.OccurredAt, ev.OccurredAt)
	assert.Equal(t, Debited{Account: "a1", Amount: 5}, r.Payload)
	assert.Equal(t, int64(1), counter(t, e, "debited:a1"))

	var inboxRows int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM uno_inbox WHERE consumer = 'events.account.debited' AND message_id = $1`,
		ev.ID.String()).Scan(&inboxRows))
	assert.Equal(t, 1, inboxRows)
}

func TestInboxSameMessageTwiceChangesTheDatabaseOnce(t *testing.T) {
	e := newEnv(t)
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	inbox, err := events.NewInbox(e.tm, events.InboxConfig{Logger: quietLogger(t)})
	require.NoError(t, err)
	var deliveries, runs atomic.Int32
	startRouter(t, func(r *message.Router) {
		h, err := events.Handle(r, gc, "payments", func(ctx context.Context, ev events.Received[Debited]) error {
			runs.Add(1)
			_, err := e.tm.Querier(ctx).Exec(ctx, bumpSQL, "payments")
			return err
		}, events.WithHandlerName("payments-projection"))
		require.NoError(t, err)
		h.AddMiddleware(func(next message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				deliveries.Add(1)
				return next(msg)
			}
		}, inbox.Middleware)
	})
	id := uuid.New().String()
	for i := 0; i < 2; i++ {
		msg := message.NewMessage(id, []byte(`{"account":"x","amount":1}`))
		require.NoError(t, gc.Publish("payments", msg)) // returns once acknowledged
	}
	assert.Equal(t, int32(2), deliveries.Load(), "the message was delivered twice")
	assert.Equal(t, int32(1), runs.Load(), "the handler ran once")
	assert.Equal(t, int64(1), counter(t, e, "payments"), "the database changed once")
}

func TestInboxRollsBackWithAFailedHandlerAndTheRedeliveryApplies(t *testing.T) {
	e := newEnv(t)
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	inbox, err := events.NewInbox(e.tm, events.InboxConfig{Consumer: "refunds-consumer", Logger: quietLogger(t)})
	require.NoError(t, err)
	var runs atomic.Int32
	startRouter(t, func(r *message.Router) {
		r.AddMiddleware(inbox.Middleware)
		_, err := events.Handle(r, gc, "refunds", func(ctx context.Context, ev events.Received[Debited]) error {
			if _, err := e.tm.Querier(ctx).Exec(ctx, bumpSQL, "refunds"); err != nil {
				return err
			}
			if runs.Add(1) == 1 {
				return errors.New("first delivery fails after writing")
			}
			return nil
		})
		require.NoError(t, err)
	})
	id := uuid.NewString()
	require.ErrorIs(t, gc.Publish("refunds", message.NewMessage(id, []byte(`{}`))), events.ErrNacked,
		"the failed delivery is reported to the publisher (the relay retries it)")
	require.NoError(t, gc.Publish("refunds", message.NewMessage(id, []byte(`{}`))), "the redelivery")
	assert.Equal(t, int32(2), runs.Load())
	assert.Equal(t, int64(1), counter(t, e, "refunds"), "the failed delivery's write was rolled back")
	var consumer string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT consumer FROM uno_inbox`).Scan(&consumer))
	assert.Equal(t, "refunds-consumer", consumer)
}

func TestHandleRejectsADuplicateNameAndReportsMalformedPayloads(t *testing.T) {
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	require.NoError(t, err)
	noop := func(context.Context, events.Received[Debited]) error { return nil }
	_, err = events.Handle(router, gc, "t", noop)
	require.NoError(t, err)
	_, err = events.Handle(router, gc, "t", noop)
	require.ErrorContains(t, err, "WithHandlerName")
	_, err = events.Handle(router, gc, "t", noop, events.WithHandlerName("other"))
	require.NoError(t, err)

	_, err = events.Decode[Debited](message.NewMessage("not-a-uuid", []byte("{")), nil)
	require.ErrorIs(t, err, events.ErrMalformedPayload)
	r, err := events.Decode[Debited](message.NewMessage("not-a-uuid", []byte(`{"amount":3}`)), nil)
	require.NoError(t, err)
	assert.Equal(t, uuid.Nil, r.ID)
	assert.Equal(t, "not-a-uuid", r.MessageUUID)
	assert.Equal(t, int64(3), r.Payload.Amount)
}
