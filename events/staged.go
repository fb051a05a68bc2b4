package events

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uno-framework/uno/txmanager"
)

// Staged returns the events emitted through o in ctx's transaction that are still to
// be written at its commit — those of every open scope and of the scopes that succeeded
// inside them, in emission order — decoded as the relay will publish them (Payload is
// the encoded []byte, OccurredAt has microsecond precision). It reads the transaction,
// not the outbox table, so it sees the events of a transaction that has not committed
// (or never will, like a test's); package uowtest builds its assertions on it. Outside
// a transaction it returns an error wrapping txmanager.ErrNoTransaction.
func (o *Outbox) Staged(ctx context.Context) ([]Event, error) {
	items, err := txmanager.Staged(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("events: read the staged events: %w", err)
	}
	encs := make([][]byte, 0, len(items))
	for _, it := range items {
		rec, ok := it.(*record)
		if !ok {
			return nil, fmt.Errorf("events: the outbox holds a staged %T, not an event staged by Outbox.Emit", it)
		}
		encs = append(encs, rec.enc)
	}
	if len(encs) == 0 {
		return nil, nil
	}
	return DecodeEnvelope(appendEnvelope(nil, encs))
}

// NewMessage returns the Watermill message the relay publishes for ev: ev.ID as the
// message UUID, the payload as is, and ev.Metadata with [MetadataTopic], [MetadataKey],
// [MetadataType] and [MetadataOccurredAt] set. ev.Payload must be the encoded []byte,
// as [Outbox.Staged], [ReadPending] and [DecodeEnvelope] return it.
func NewMessage(ev Event) (*message.Message, error) {
	payload, ok := ev.Payload.([]byte)
	if !ok && ev.Payload != nil {
		return nil, fmt.Errorf("%w: event %s: NewMessage needs the encoded payload ([]byte), got %T",
			ErrInvalidEvent, ev.ID, ev.Payload)
	}
	if ev.Topic == "" {
		return nil, fmt.Errorf("%w: event %s has no topic", ErrInvalidEvent, ev.ID)
	}
	x := storedEvent{id: ev.ID, topic: ev.Topic, key: ev.Key, typ: ev.Type, payload: payload,
		occurredAt: ev.OccurredAt.Truncate(time.Microsecond)}
	for k, v := range ev.Metadata {
		x.metadata = append(x.metadata, k, v)
	}
	return x.message(), nil
}

// Marshaler returns the Marshaler that encodes the payloads of o's events, to decode
// them with (as [Outbox.Staged] returns them, for instance).
func (o *Outbox) Marshaler() Marshaler { return o.marshaler }
