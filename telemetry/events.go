package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/txmanager"
)

// Span attributes of messages.
const (
	attrDestination = attribute.Key("messaging.destination.name")
	attrBatchCount  = attribute.Key("messaging.batch.message_count")
	attrMessageID   = attribute.Key("messaging.message.id")
	attrEventKey    = attribute.Key("uno.event.key")
	attrEventType   = attribute.Key("uno.event.type")
)

// outboxReadTimeout bounds the outbox query of one metrics collection.
const outboxReadTimeout = 5 * time.Second

// relayInstruments are the synchronous instruments of the relay's publisher.
type relayInstruments struct {
	batchSize metric.Int64Histogram
	latency   metric.Float64Histogram
}

func newRelayInstruments(meter metric.Meter) (relayInstruments, error) {
	var ri relayInstruments
	var err error
	if ri.batchSize, err = meter.Int64Histogram("uno.relay.batch.size",
		metric.WithDescription("Messages per Publish call of the relay."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)); err != nil {
		return ri, err
	}
	if ri.latency, err = meter.Float64Histogram("uno.relay.publish.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the relay's Publish calls, by outcome.")); err != nil {
		return ri, err
	}
	return ri, nil
}

// Publisher returns pub observed: a span per Publish call (a batch of the relay's, of
// one topic), the batch size and the publish latency. Give it to events.NewRelay in
// place of pub. Without providers it returns pub itself.
func (t *Telemetry) Publisher(pub message.Publisher) message.Publisher {
	if t.tracer == nil && t.meter == nil {
		return pub
	}
	return &publisher{t: t, pub: pub}
}

// publisher is the decorator of Publisher.
type publisher struct {
	t   *Telemetry
	pub message.Publisher
}

// Publish publishes msgs through the decorated publisher, observed.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	start := time.Now()
	var span trace.Span
	if p.t.tracer != nil {
		span = p.startSpan(topic, msgs)
	}
	err := p.pub.Publish(topic, msgs...)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
		}
		span.End()
	}
	if p.t.meter != nil {
		ctx := context.Background()
		outcome := "published"
		if err != nil {
			outcome = "failed"
		}
		p.t.relay.batchSize.Record(ctx, int64(len(msgs)))
		p.t.relay.latency.Record(ctx, time.Since(start).Seconds(),
			metric.WithAttributes(attribute.String("outcome", outcome)))
	}
	return err
}

// startSpan starts the span of a batch: linked to the trace of each message, and the
// child of their emitting span when they all come from one trace.
func (p *publisher) startSpan(topic string, msgs []*message.Message) trace.Span {
	parent := context.Background()
	links := make([]trace.Link, 0, len(msgs))
	var first trace.SpanContext
	oneTrace := true
	for _, m := range msgs {
		mctx := p.t.extract(context.Background(), m.Metadata)
		sc := trace.SpanContextFromContext(mctx)
		if !sc.IsValid() {
			oneTrace = false
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
		if !first.IsValid() {
			first, parent = sc, mctx
		} else if sc.TraceID() != first.TraceID() {
			oneTrace = false
		}
	}
	if !oneTrace {
		parent = context.Background()
	}
	_, span := p.t.tracer.Start(parent, "uno.relay publish "+topic,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(links...),
		trace.WithAttributes(attrDestination.String(topic), attrBatchCount.Int(len(msgs))))
	return span
}

// Close closes the decorated publisher.
func (p *publisher) Close() error { return p.pub.Close() }

// Middleware is a Watermill middleware that runs the handler in a span, "uno.handle
// <topic>", the child of the span that emitted the event (its trace context travels in
// the message metadata), whatever the transport. Put it before events.Inbox's
// middleware, so that the Inbox's transaction is a child of it:
// router.AddMiddleware(tel.Middleware, inbox.Middleware). Without a TracerProvider it
// returns h itself.
func (t *Telemetry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	if t.tracer == nil {
		return h
	}
	return func(msg *message.Message) ([]*message.Message, error) {
		orig := msg.Context()
		topic := msg.Metadata.Get(events.MetadataTopic)
		if topic == "" {
			topic = message.SubscribeTopicFromCtx(orig)
		}
		ctx, span := t.tracer.Start(t.extract(orig, msg.Metadata), "uno.handle "+topic,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attrDestination.String(topic), attrMessageID.String(msg.UUID),
				attrEventKey.String(msg.Metadata.Get(events.MetadataKey)),
				attrEventType.String(msg.Metadata.Get(events.MetadataType))))
		defer span.End()
		msg.SetContext(ctx)
		defer msg.SetContext(orig)
		out, err := h(msg)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "handler failed")
		}
		return out, err
	}
}

// ObserveRelay reports the relay's counters and leases at each collection:
// uno.relay.published, uno.relay.failed, uno.relay.dead_lettered and uno.relay.leases,
// with the relay's ID as attribute uno.relay.id. Without a MeterProvider it does
// nothing; unregister it with the returned function when the relay is gone.
func (t *Telemetry) ObserveRelay(r *events.Relay) (unregister func() error, err error) {
	if t.meter == nil {
		return func() error { return nil }, nil
	}
	if r == nil {
		return nil, errors.New("telemetry: ObserveRelay needs a relay")
	}
	published, err := t.meter.Int64ObservableCounter("uno.relay.published",
		metric.WithDescription("Events the relay delivered."))
	if err != nil {
		return nil, err
	}
	failed, err := t.meter.Int64ObservableCounter("uno.relay.failed",
		metric.WithDescription("Failed publish attempts of events."))
	if err != nil {
		return nil, err
	}
	dead, err := t.meter.Int64ObservableCounter("uno.relay.dead_lettered",
		metric.WithDescription("Events the relay moved to uno_dead_letters."))
	if err != nil {
		return nil, err
	}
	leases, err := t.meter.Int64ObservableGauge("uno.relay.leases",
		metric.WithDescription("Outbox partitions whose lease the relay holds."))
	if err != nil {
		return nil, err
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("uno.relay.id", r.ID())))
	reg, err := t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		p := r.Progress()
		o.ObserveInt64(published, int64(p.Published), attrs)
		o.ObserveInt64(failed, int64(p.Failed), attrs)
		o.ObserveInt64(dead, int64(p.DeadLettered), attrs)
		o.ObserveInt64(leases, int64(p.Partitions), attrs)
		return nil
	}, published, failed, dead, leases)
	if err != nil {
		return nil, fmt.Errorf("telemetry: observe the relay: %w", err)
	}
	return reg.Unregister, nil
}

// ObserveOutbox reports, at each collection, the events waiting in the outbox
// (uno.outbox.pending) and the age of the oldest (uno.outbox.oldest_age, seconds),
// read through q (the pool) with one query bounded by 5 seconds. Without a
// MeterProvider it does nothing; unregister it with the returned function.
func (t *Telemetry) ObserveOutbox(q txmanager.Querier) (unregister func() error, err error) {
	if t.meter == nil {
		return func() error { return nil }, nil
	}
	if q == nil {
		return nil, errors.New("telemetry: ObserveOutbox needs a pool")
	}
	pending, err := t.meter.Int64ObservableGauge("uno.outbox.pending",
		metric.WithDescription("Events waiting in the outbox to be relayed."))
	if err != nil {
		return nil, err
	}
	oldest, err := t.meter.Float64ObservableGauge("uno.outbox.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest event waiting in the outbox."))
	if err != nil {
		return nil, err
	}
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, outboxReadTimeout)
		defer cancel()
		l, err := events.ReadLag(ctx, q)
		if err != nil {
			return fmt.Errorf("telemetry: read the outbox lag: %w", err)
		}
		o.ObserveInt64(pending, l.Pending)
		o.ObserveFloat64(oldest, l.Oldest.Seconds())
		return nil
	}, pending, oldest)
	if err != nil {
		return nil, fmt.Errorf("telemetry: observe the outbox: %w", err)
	}
	return reg.Unregister, nil
}
