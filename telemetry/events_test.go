package telemetry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/uow"
)

// Debited is the payload of the test's events.
type Debited struct {
	Account int `json:"account"`
}

// TestOneTraceFromTheUseCaseThroughTheRelayToTheHandler: the handler's span continues
// the trace of the use-case that emitted the event, through the outbox, the relay and
// GoChannel; the relay's batch span is in that trace too, and the Inbox's transaction
// is a child of the handler's span. Metrics of the relay and the outbox move.
func TestOneTraceFromTheUseCaseThroughTheRelayToTheHandler(t *testing.T) {
	e := newOtelEnv(t)
	ctx := t.Context()
	require.NoError(t, e.tel.ObservePool(e.pool))
	unregisterOutbox, err := e.tel.ObserveOutbox(e.pool)
	require.NoError(t, err)
	defer func() { require.NoError(t, unregisterOutbox()) }()

	units, err := uow.NewManager(e.tm, events.NewOutbox(events.OutboxConfig{ContextMetadata: e.tel.InjectMetadata}))
	require.NoError(t, err)

	// The use-case commits before anything is relayed: its event waits in the outbox.
	ctx, useCase := e.tp.Tracer("test").Start(ctx, "use-case")
	require.NoError(t, units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		return u.Emit(events.New("account.debited", Debited{Account: 7}, events.WithKey("7")))
	}))
	useCase.End()
	m := e.metrics(t)
	assert.EqualValues(t, 1, sum(m["uno.outbox.pending"]))
	assert.Contains(t, m, "pgxpool.acquired_connections")
	assert.Contains(t, m, "pgxpool.idle_connections")
	assert.Contains(t, m, "pgxpool.empty_acquire")
	assert.Contains(t, m, "pgxpool.empty_acquire_wait_time")

	// The subscriber: the telemetry middleware, then the inbox, then the handler.
	pubsub := events.NewGoChannel(nil)
	defer pubsub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	require.NoError(t, err)
	inbox, err := events.NewInbox(e.tm, events.InboxConfig{})
	require.NoError(t, err)
	router.AddMiddleware(e.tel.Middleware, inbox.Middleware)
	var (
		mu        sync.Mutex
		handledIn trace.SpanContext
	)
	handled := make(chan struct{})
	_, err = events.Handle(router, pubsub, "account.debited", func(ctx context.Context, ev events.Received[Debited]) error {
		mu.Lock()
		handledIn = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		close(handled)
		return nil
	})
	require.NoError(t, err)
	routerDone := make(chan struct{})
	go func() {
		defer close(routerDone)
		_ = router.Run(context.WithoutCancel(ctx))
	}()
	defer func() {
		require.NoError(t, router.Close())
		<-routerDone
	}()
	<-router.Running()

	relay, err := events.NewRelay(e.pool, e.tel.Publisher(pubsub), events.RelayConfig{Workers: 1})
	require.NoError(t, err)
	unregisterRelay, err := e.tel.ObserveRelay(relay)
	require.NoError(t, err)
	defer func() { require.NoError(t, unregisterRelay()) }()
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	select {
	case <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the event was not handled within 20 s")
	}
	require.Eventually(t, func() bool { return relay.Progress().Published == 1 }, 10*time.Second, 10*time.Millisecond)
	m = e.metrics(t)
	assert.EqualValues(t, 1, sum(m["uno.relay.published"]))
	assert.Positive(t, sum(m["uno.relay.leases"]), "the relay holds leases")
	assert.EqualValues(t, 1, sum(m["uno.relay.batch.size"]))
	assert.EqualValues(t, 1, sum(m["uno.relay.publish.duration"], "outcome=published"))
	assert.Positive(t, sum(m["pgxpool.acquires"]), "the pool's acquisitions are counted")
	require.Eventually(t, func() bool { return sum(e.metrics(t)["uno.outbox.pending"]) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the relayed event left the outbox")
	stopRelay()
	require.NoError(t, <-relayDone)

	traceID := useCase.SpanContext().TraceID()
	emitting := e.ended("uno.tx")[0] // the use-case's transaction: Emit ran in its scope
	require.Equal(t, traceID, emitting.SpanContext().TraceID())

	handle := e.ended("uno.handle account.debited")
	require.Len(t, handle, 1)
	assert.Equal(t, traceID, handle[0].SpanContext().TraceID(), "the handler continues the use-case's trace")
	assert.Equal(t, emitting.SpanContext().SpanID(), handle[0].Parent().SpanID(), "a child of the emitting scope")
	assert.True(t, handle[0].Parent().IsRemote(), "across the transport")

	publish := e.ended("uno.relay publish account.debited")
	require.Len(t, publish, 1)
	assert.Equal(t, traceID, publish[0].SpanContext().TraceID(), "one trace: the relay's batch too")
	require.Len(t, publish[0].Links(), 1)
	assert.Equal(t, emitting.SpanContext().SpanID(), publish[0].Links()[0].SpanContext.SpanID())

	var inboxTx []string
	for _, s := range e.ended("uno.tx") {
		if s.Parent().SpanID() == handle[0].SpanContext().SpanID() {
			inboxTx = append(inboxTx, s.Name())
		}
	}
	assert.Len(t, inboxTx, 1, "the inbox's transaction is a child of the handler's span")
	mu.Lock()
	assert.Equal(t, traceID, handledIn.TraceID(), "the handler's ctx carries the trace")
	mu.Unlock()
}

// failingPublisher fails every Publish.
type failingPublisher struct{}

func (failingPublisher) Publish(string, ...*message.Message) error { return errors.New("broker down") }
func (failingPublisher) Close() error                              { return nil }

// TestRelayFailureMetrics: publish failures and dead letters move their metrics, and the
// failed batch's span ends in error.
func TestRelayFailureMetrics(t *testing.T) {
	e := newOtelEnv(t)
	ctx := t.Context()
	units, err := uow.NewManager(e.tm, nil)
	require.NoError(t, err)
	require.NoError(t, units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		return u.Emit(events.New("account.debited", Debited{Account: 8}))
	}))
	relay, err := events.NewRelay(e.pool, e.tel.Publisher(failingPublisher{}), events.RelayConfig{
		Workers: 1, MaxAttempts: 2, RetryBackoff: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	unregister, err := e.tel.ObserveRelay(relay)
	require.NoError(t, err)
	defer func() { require.NoError(t, unregister()) }()
	relayCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(relayCtx) }()
	require.Eventually(t, func() bool { return relay.Progress().DeadLettered == 1 }, 20*time.Second, 10*time.Millisecond)
	stop()
	require.NoError(t, <-done)

	m := e.metrics(t)
	assert.EqualValues(t, 1, sum(m["uno.relay.dead_lettered"]))
	assert.EqualValues(t, 2, sum(m["uno.relay.failed"]))
	assert.Zero(t, sum(m["uno.relay.published"]))
	assert.EqualValues(t, 2, sum(m["uno.relay.publish.duration"], "outcome=failed"))
	spans := e.ended("uno.relay publish account.debited")
	require.Len(t, spans, 2)
	assert.Equal(t, "Error", spans[0].Status().Code.String())
	assert.Empty(t, spans[0].Links(), "an event emitted without a trace links to none")
}
