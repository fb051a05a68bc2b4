package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Event is a domain event: something that happened, told to whoever subscribes to its
// topic once the transaction that emitted it has committed.
//
// ID travels end to end as the Watermill message UUID; consumers deduplicate on it (see
// [Inbox]). Key, usually the aggregate's ID, orders events: the relay publishes the
// events of one key in the order they were written to the outbox. Events with an empty
// Key have no order among themselves and are spread over all partitions.
type Event struct {
	// ID identifies the event; [New] sets a UUIDv7 and [Outbox.Emit] sets one if it is
	// still zero.
	ID uuid.UUID
	// Topic is the topic the event is published to. Required.
	Topic string
	// Key orders events: those with the same key are published in order.
	Key string
	// Type is an optional type name for the payload, copied to the message metadata
	// under [MetadataType].
	Type string
	// Payload is the event's data. A []byte is published as is; any other value is
	// encoded by the Outbox's [Marshaler] (JSON by default) when the event is emitted.
	Payload any
	// Metadata is copied into the Watermill message metadata. The keys of the relay
	// ([MetadataTopic], [MetadataKey], [MetadataType], [MetadataOccurredAt]) win over
	// entries of the same name.
	Metadata map[string]string
	// OccurredAt is when the event happened; [New] sets the current time and Emit sets
	// it if it is still zero. It is stored, and delivered, with microsecond precision
	// (PostgreSQL's); New truncates it so that the event compares equal to what
	// subscribers receive.
	OccurredAt time.Time
}

// Option sets a field of an Event built by [New].
type Option func(*Event)

// WithKey sets the event's ordering key (usually the aggregate's ID).
func WithKey(key string) Option {
	return func(e *Event) { e.Key = key }
}

// WithType sets the event's type name.
func WithType(typ string) Option {
	return func(e *Event) { e.Type = typ }
}

// WithMetadata adds one metadata entry to the event.
func WithMetadata(key, value string) Option {
	return func(e *Event) {
		if e.Metadata == nil {
			e.Metadata = make(map[string]string, 1)
		}
		e.Metadata[key] = value
	}
}

// WithID sets the event's ID instead of a new UUIDv7, e.g. to derive it from a
// request ID so that a retried request emits the same event.
func WithID(id uuid.UUID) Option {
	return func(e *Event) { e.ID = id }
}

// WithOccurredAt sets when the event happened instead of the current time.
func WithOccurredAt(t time.Time) Option {
	return func(e *Event) { e.OccurredAt = t }
}

// New returns an event for topic carrying payload, with a new UUIDv7 ID and the
// current time as OccurredAt, adjusted by opts.
//
// New never fails: the payload is encoded when the event is emitted ([Outbox.Emit]),
// which returns the encoding error, and an empty topic is reported there too. This
// keeps the common call short:
//
//	err := outbox.Emit(ctx, events.New("account.debited", Debited{ID: id, Amount: 5}, events.WithKey(key)))
func New(topic string, payload any, opts ...Option) Event {
	e := Event{Topic: topic, Payload: payload, OccurredAt: time.Now().Truncate(time.Microsecond)}
	if id, err := uuid.NewV7(); err == nil {
		e.ID = id
	} // else left zero: Emit draws one and reports a failure.
	for _, opt := range opts {
		if opt != nil {
			opt(&e)
		}
	}
	return e
}

// Marshaler encodes event payloads for the outbox and decodes them for [Handle].
// Implementations must be safe for concurrent use.
type Marshaler interface {
	// Marshal encodes a payload.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSONMarshaler is the default [Marshaler]: encoding/json.
type JSONMarshaler struct{}

// Marshal encodes v as JSON.
func (JSONMarshaler) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSONMarshaler) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Keys of the Watermill message metadata the relay sets on every message.
const (
	// MetadataTopic holds the event's topic.
	MetadataTopic = "uno_topic"
	// MetadataKey holds the event's ordering key (empty when it has none).
	MetadataKey = "uno_key"
	// MetadataType holds the event's type name (empty when it has none).
	MetadataType = "uno_type"
	// MetadataOccurredAt holds when the event happened, in RFC 3339 with nanoseconds.
	MetadataOccurredAt = "uno_occurred_at"
)

// Partitions is the number of outbox partitions. The outbox writer stores the events
// of a key in its partition ([PartitionOf]); a relay holds a lease on a partition to
// publish its events, so Partitions bounds how many relays share the work. It is a
// constant of the stored data: changing it would move keys between partitions.
const Partitions = 32

// PartitionOf returns the outbox partition of an event: the FNV-1a hash of its key
// modulo [Partitions], or of its ID when the key is empty. Events without key have no
// order to keep: the outbox stores them in the envelope of their transaction's first
// event, whose partition this gives, so they are spread evenly.
func PartitionOf(key string, id uuid.UUID) int16 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	if key != "" {
		for i := 0; i < len(key); i++ {
			h ^= uint32(key[i])
			h *= prime32
		}
	} else {
		for _, c := range id {
			h ^= uint32(c)
			h *= prime32
		}
	}
	return int16(h % Partitions)
}

// validate reports what is wrong with an event about to be emitted. Its texts are
// stored in PostgreSQL text columns when it is dead-lettered (and its key in the
// outbox), so they must be valid UTF-8 without NUL bytes.
func (e Event) validate() error {
	if e.Topic == "" {
		return fmt.Errorf("%w: event %s has no topic; give one to events.New", ErrInvalidEvent, e.ID)
	}
	bad := func(s string) bool { return !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 }
	for _, f := range [...]struct{ name, v string }{{"topic", e.Topic}, {"key", e.Key}, {"type", e.Type}} {
		if bad(f.v) {
			return fmt.Errorf("%w: event %s: its %s %q is not valid UTF-8 or holds a NUL byte; use text PostgreSQL can store",
				ErrInvalidEvent, e.ID, f.name, f.v)
		}
	}
	for k, v := range e.Metadata {
		if bad(k) || bad(v) {
			return fmt.Errorf("%w: event %s: metadata entry %q is not valid UTF-8 or holds a NUL byte; use text PostgreSQL can store",
				ErrInvalidEvent, e.ID, k)
		}
	}
	return nil
}
