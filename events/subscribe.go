package events

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// Received is an event as a handler receives it: the decoded payload and what the
// relay put in the message.
type Received[T any] struct {
	// ID is the event ID (the message UUID); zero when the message UUID is not a UUID
	// (a message that did not come from the outbox).
	ID uuid.UUID
	// MessageUUID is the Watermill message UUID as it arrived.
	MessageUUID string
	// Topic is the event's topic ([MetadataTopic], else the subscribed topic).
	Topic string
	// Key and Type are the event's ordering key and type name (empty if unset).
	Key  string
	Type string
	// OccurredAt is when the event happened (zero if the metadata lacks it).
	OccurredAt time.Time
	// Metadata is the message metadata: the event's own entries and the relay's.
	Metadata message.Metadata
	// Payload is the decoded payload.
	Payload T
	// Message is the Watermill message itself.
	Message *message.Message
}

// Decode decodes msg into a Received[T], the payload with m (JSON when m is nil).
// A payload that cannot be decoded gives an error wrapping [ErrMalformedPayload].
func Decode[T any](msg *message.Message, m Marshaler) (Received[T], error) {
	if m == nil {
		m = JSONMarshaler{}
	}
	ev := Received[T]{
		MessageUUID: msg.UUID,
		Topic:       msg.Metadata.Get(MetadataTopic),
		Key:         msg.Metadata.Get(MetadataKey),
		Type:        msg.Metadata.Get(MetadataType),
		Metadata:    msg.Metadata,
		Message:     msg,
	}
	if id, err := uuid.Parse(msg.UUID); err == nil {
		ev.ID = id
	}
	if ev.Topic == "" {
		ev.Topic = message.SubscribeTopicFromCtx(msg.Context())
	}
	if s := msg.Metadata.Get(MetadataOccurredAt); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			ev.OccurredAt = t
		}
	}
	if err := m.Unmarshal(msg.Payload, &ev.Payload); err != nil {
		var zero T
		return ev, fmt.Errorf("%w: message %s (topic %q) into %T: %v", ErrMalformedPayload, msg.UUID, ev.Topic, zero, err)
	}
	return ev, nil
}

// HandleOption configures [Handle].
type HandleOption func(*handleConfig)

type handleConfig struct {
	name      string
	marshaler Marshaler
}

// WithHandlerName names the router handler (default "events." + topic). Names must be
// unique in a router; the [Inbox] uses the name as the consumer.
func WithHandlerName(name string) HandleOption {
	return func(c *handleConfig) { c.name = name }
}

// WithUnmarshaler decodes payloads with m instead of JSON.
func WithUnmarshaler(m Marshaler) HandleOption {
	return func(c *handleConfig) { c.marshaler = m }
}

// Handler returns a Watermill handler that decodes each message into a Received[T]
// and calls fn with the message's context — the one the [Inbox] middleware puts the
// handling transaction in, so that code in fn joining ctx (txmanager's Querier, ent
// through entdriver, Outbox.Emit) runs in it. It returns no messages. [Handle] adds it
// to a router; tests call it directly (see package uowtest), wrapped in middlewares
// such as Inbox.Middleware if they like.
//
// A payload that cannot be decoded is an error wrapping [ErrMalformedPayload]. Of opts,
// only [WithUnmarshaler] matters here.
func Handler[T any](fn func(ctx context.Context, ev Received[T]) error, opts ...HandleOption) message.HandlerFunc {
	cfg := newHandleConfig("", opts)
	m := cfg.marshaler
	return func(msg *message.Message) ([]*message.Message, error) {
		ev, err := Decode[T](msg, m)
		if err != nil {
			return nil, err
		}
		return nil, fn(msg.Context(), ev)
	}
}

func newHandleConfig(topic string, opts []HandleOption) handleConfig {
	cfg := handleConfig{name: "events." + topic, marshaler: JSONMarshaler{}}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.marshaler == nil {
		cfg.marshaler = JSONMarshaler{}
	}
	return cfg
}

// Handle adds to router r a handler of topic, subscribed through sub: the [Handler] of
// fn, which decodes each message into a Received[T] and calls fn with the message's
// context (the Inbox middleware's transaction).
//
// fn returning nil acknowledges the message; an error negatively acknowledges it: a
// failed delivery, which a broker redelivers and which [GoChannel] reports to the relay
// (retried after back-off, dead-lettered after MaxAttempts). A payload that cannot be decoded is an error wrapping
// [ErrMalformedPayload], which redelivery cannot fix: pair the router with Watermill's
// PoisonQueueWithFilter for it.
//
// Handle returns an error, and adds nothing, when the handler name is already taken.
// A handler added to a running router starts with Router.RunHandlers.
func Handle[T any](r *message.Router, sub message.Subscriber, topic string,
	fn func(ctx context.Context, ev Received[T]) error, opts ...HandleOption) (*message.Handler, error) {
	if r == nil || sub == nil || fn == nil {
		return nil, fmt.Errorf("events: Handle(%q) needs a router, a subscriber and a handler function", topic)
	}
	if topic == "" {
		return nil, fmt.Errorf("events: Handle needs a topic")
	}
	cfg := newHandleConfig(topic, opts)
	if _, taken := r.Handlers()[cfg.name]; taken {
		return nil, fmt.Errorf("events: a handler named %q is already in the router; give this one another name with events.WithHandlerName", cfg.name)
	}
	h := Handler(fn, opts...)
	return r.AddConsumerHandler(cfg.name, topic, sub, func(msg *message.Message) error {
		_, err := h(msg)
		return err
	}), nil
}
