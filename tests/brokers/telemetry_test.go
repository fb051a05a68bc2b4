package brokers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
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
	requireBroker(t, "127.0.0.1:5672")
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	require.NoError(t, err)
	tm, err := txmanager.New(e.pool, txmanager.Config{Observer: tel.TxObserver()})
	require.NoError(t, err)
	outbox := events.NewOutbox(events.OutboxConfig{ContextMetadata: tel.InjectMetadata})

	cfg := amqp.NewDurableQueueConfig(amqpURL)
	cfg.Queue.AutoDelete = true
	cfg.Publish.ConfirmDelivery = true
	pub, err := amqp.NewPublisher(cfg, watermill.NopLogger{})
	require.NoError(t, err)
	sub, err := amqp.NewSubscriber(cfg, watermill.NopLogger{})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, pub.Close())
		assert.NoError(t, sub.Close())
	})
	topic := "uno-trace-test-" + uuid.NewString()
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
	waitFor(t, 30*time.Second, "the event through RabbitMQ", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handledIn.IsValid()
	})

	var emitting, handle sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, "the handler's span to end", func() bool {
		for _, s := range spans.Ended() {
			switch s.Name() {
			case "uno.tx":
				if emitting == nil {
					emitting = s
				}
			case "uno.handle " + topic:
				handle = s
			}
		}
		return handle != nil
	})
	require.NotNil(t, emitting)
	assert.Equal(t, useCase.SpanContext().TraceID(), handle.SpanContext().TraceID(), "one trace from the use-case to the handler")
	assert.Equal(t, emitting.SpanContext().SpanID(), handle.Parent().SpanID())
	mu.Lock()
	assert.Equal(t, useCase.SpanContext().TraceID(), handledIn.TraceID())
	mu.Unlock()
}
