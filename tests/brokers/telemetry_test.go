package brokers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/telemetry"
	"github.com/uno-framework/uno/txmanager"
)

// TestTraceThroughRabbitMQ: the handler's span continues the trace of the use-case that
// emitted the event, across RabbitMQ (the trace context travels as message headers).
func TestTraceThroughRabbitMQ(t *testing.T) {
	pub, sub := amqpPubSub(t)
	traceThroughBroker(t, pub, sub, "uno-trace-test-"+uuid.NewString(), "RabbitMQ")
}

// TestTraceThroughNATS: the same across NATS JetStream (the trace context travels as
// message headers).
func TestTraceThroughNATS(t *testing.T) {
	topic := "uno-trace-test-" + uuid.NewString()
	pub, sub := natsPubSub(t, topic)
	traceThroughBroker(t, pub, sub, topic, "NATS JetStream")
}

// traceThroughBroker emits an event on topic in a use-case's transaction, relays it
// through pub (named broker) to a handler subscribed through sub, and checks that one
// trace goes from the use-case to the handler: the handler's span is a child of the
// emitting transaction's.
func traceThroughBroker(t *testing.T, pub message.Publisher, sub message.Subscriber, topic, broker string) {
	t.Helper()
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	require.NoError(t, err)
	tm, err := txmanager.New(e.pool, txmanager.Config{Observer: tel.TxObserver()})
	require.NoError(t, err)
	outbox := events.NewOutbox(events.OutboxConfig{ContextMetadata: tel.InjectMetadata})

	var (
		mu        sync.Mutex
		handledIn trace.SpanContext
	)
	startRouter(t, func(r *message.Router) {
		r.AddMiddleware(tel.Middleware)
		_, err := events.Handle(r, sub, topic, func(ctx context.Context, ev events.Received[int]) error {
			mu.Lock()
			defer mu.Unlock()
			handledIn = trace.SpanContextFromContext(ctx)
			return nil
		})
		require.NoError(t, err)
	})
	relay, err := events.NewRelay(e.pool, tel.Publisher(pub), events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)

	ctx, useCase := tp.Tracer("test").Start(context.Background(), "use-case")
	require.NoError(t, tm.Do(ctx, func(ctx context.Context) error {
		return outbox.Emit(ctx, events.New(topic, 1, events.WithKey("k")))
	}))
	useCase.End()
	waitFor(t, 30*time.Second, "the event through "+broker, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handledIn.IsValid()
	})

	var emitting, publish, handle sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, "the relay's and the handler's spans to end", func() bool {
		for _, s := range spans.Ended() {
			switch s.Name() {
			case "uno.tx":
				if emitting == nil {
					emitting = s
				}
			case "uno.relay publish " + topic:
				publish = s
			case "uno.handle " + topic:
				handle = s
			}
		}
		return publish != nil && handle != nil
	})
	require.NotNil(t, emitting)
	traceID := useCase.SpanContext().TraceID()
	assert.Equal(t, traceID, emitting.SpanContext().TraceID())
	assert.Equal(t, traceID, publish.SpanContext().TraceID(), "the relay's batch is in the use-case's trace")
	assert.Equal(t, emitting.SpanContext().SpanID(), publish.Parent().SpanID())
	assert.Equal(t, traceID, handle.SpanContext().TraceID(), "one trace from the use-case to the handler")
	assert.Equal(t, emitting.SpanContext().SpanID(), handle.Parent().SpanID())
	mu.Lock()
	assert.Equal(t, traceID, handledIn.TraceID())
	mu.Unlock()
}
