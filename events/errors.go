package events

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

var (
	// ErrInvalidEvent is returned by [Outbox.Emit] for an event it cannot write, such
	// as one without a topic.
	ErrInvalidEvent = errors.New("events: invalid event")

	// ErrRelayRunning is returned by [Relay.Run] when the relay is already running.
	ErrRelayRunning = errors.New("events: relay is already running; a Relay runs once at a time, create another one to run more")

	// ErrMalformedPayload is wrapped by the error a [Handle] handler returns when a
	// message payload cannot be decoded into the handler's type. Redelivering such a
	// message cannot succeed: route it with Watermill's PoisonQueueWithFilter.
	ErrMalformedPayload = errors.New("events: malformed payload")

	// ErrNotMigrated is wrapped by the errors of the outbox, the relay, the inbox and
	// the operator reads when uno's tables are missing from the database.
	ErrNotMigrated = errors.New("events: uno's tables are missing; run schema.Migrate (or `uno migrate`) first")

	// ErrDeadLetterNotFound is returned by [ReadDeadLetter] for an id that is not in
	// uno_dead_letters (never was, or was requeued or purged).
	ErrDeadLetterNotFound = errors.New("events: no such dead letter")

	// ErrNoConsumer is returned by the [Inbox] middleware for a message that reached it
	// outside a router handler when InboxConfig.Consumer is empty.
	ErrNoConsumer = errors.New("events: inbox has no consumer name; set InboxConfig.Consumer or use the middleware in a Watermill router")
)

// MarshalError is returned by [Outbox.Emit] when an event's payload or metadata cannot
// be encoded. Nothing of the call was staged.
type MarshalError struct {
	// Topic and ID identify the event.
	Topic string
	ID    uuid.UUID
	// Err is the marshaler's error.
	Err error
}

// Error says which event could not be encoded and why.
func (e *MarshalError) Error() string {
	return fmt.Sprintf("events: encode the payload of event %s (topic %q): %v", e.ID, e.Topic, e.Err)
}

// Unwrap returns the marshaler's error.
func (e *MarshalError) Unwrap() error { return e.Err }
