package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

var (
	// ErrNotAcknowledged is wrapped by the [DeliveryError] of [GoChannel.Publish] for a
	// message that no handler acknowledged: the topic had no subscriber, or the Pub/Sub
	// closed before a handler finished. The relay keeps such an event in the outbox and
	// publishes it again later.
	ErrNotAcknowledged = errors.New("events: no subscriber acknowledged the message (no subscriber for the topic, or the Pub/Sub is closing); it stays in the outbox and is published again")

	// ErrNacked is wrapped by the [DeliveryError] of [GoChannel.Publish] for a message
	// a handler acknowledged negatively (a Watermill router handler that returned an
	// error). For the relay it is a failed delivery: the event is retried after
	// back-off, and moves to uno_dead_letters after RelayConfig.MaxAttempts.
	ErrNacked = errors.New("events: a subscriber rejected the message (negative acknowledgement; a router handler returned an error)")
)

// DeliveryError is the error of [GoChannel.Publish] when a message of the call was not
// handled. The messages before it were (Delivered of them), the messages after it were
// not handed to any subscriber, so that the order of the call is kept: publish them
// again after this one.
type DeliveryError struct {
	// Topic is the topic published to.
	Topic string
	// MessageUUID is the message that was not handled.
	MessageUUID string
	// Delivered is how many messages of the call, from the first, were acknowledged
	// before it.
	Delivered int
	// Err is ErrNacked or ErrNotAcknowledged.
	Err error
}

// Error says which message was not handled and why.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("events: message %s of topic %q (after %d delivered): %v", e.MessageUUID, e.Topic, e.Delivered, e.Err)
}

// Unwrap returns ErrNacked or ErrNotAcknowledged.
func (e *DeliveryError) Unwrap() error { return e.Err }

// GoChannel is uno's default transport: an in-process Watermill Pub/Sub (a
// message.Publisher and message.Subscriber) made for the relay. Use the same GoChannel
// as the relay's publisher and as the subscriber of the Watermill router.
//
// Publish hands the messages of a call to the subscribers one after the other and
// returns once each was acknowledged, so the relay deletes an event only after its
// handler succeeded, and the events of a key reach the handler in order. A message
// that was not handled ends the call with a [DeliveryError]: wrapping [ErrNacked] when
// a handler acknowledged it negatively (a router handler returned an error), or
// [ErrNotAcknowledged] when no handler acknowledged it — the topic has no subscriber,
// or the Pub/Sub closed while the handler ran. The later messages of the call are not
// handed out. (Watermill's gochannel instead returns nil in the last two cases, which
// would let the relay delete an event no handler saw, and redelivers a negatively
// acknowledged message at once and without limit, holding its topic.) So the relay's
// back-off and dead letters apply, as with a broker that refuses a message.
//
// A message goes to the subscribers of its topic one after the other; each gets its
// own message (the first shares the publisher's metadata map), whose context is the
// subscription's. Publish calls on one topic from several goroutines run at the same
// time (the relay publishes each partition from one worker, so the order of a key is
// kept); the messages of one call are handed out in order.
//
// Start the router (wait for Router.Running) before the relay, and stop the relay
// before the router and the GoChannel; an event published meanwhile is kept in the
// outbox and published again.
//
// With a Watermill router, the Retry middleware retries a failing handler inside one
// delivery (the relay counts one failed attempt when Retry gives up), and the
// PoisonQueue middleware acknowledges a message after sending it to its poison topic
// (the relay then counts it delivered, and it never reaches uno_dead_letters).
type GoChannel struct {
	mu      sync.RWMutex
	topics  map[string][]*subscription
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup // the closers of the subscriptions
}

// subscription is one Subscribe call: its channel, closed when its context ends or
// the GoChannel closes.
type subscription struct {
	ctx  context.Context
	out  chan *message.Message
	done chan struct{} // closed first when the subscription ends

	sending sync.Mutex // held while a message is handed to out, so out is not closed meanwhile
}

// NewGoChannel returns a GoChannel. logger is accepted for symmetry with other
// Pub/Subs and may be nil: GoChannel reports through its errors and logs nothing.
func NewGoChannel(logger *slog.Logger) *GoChannel {
	_ = logger
	return &GoChannel{topics: make(map[string][]*subscription), closing: make(chan struct{})}
}

// Publish hands msgs to the subscribers of topic, one after the other, and returns
// once each was acknowledged. A message not handled ends the call with a
// [*DeliveryError] (see [GoChannel]).
func (g *GoChannel) Publish(topic string, msgs ...*message.Message) error {
	for i, m := range msgs {
		if err := g.deliver(topic, m); err != nil {
			return &DeliveryError{Topic: topic, MessageUUID: m.UUID, Delivered: i, Err: err}
		}
	}
	return nil
}

// deliver hands m to each subscriber of topic and waits for its acknowledgement; it
// returns ErrNacked or ErrNotAcknowledged when one did not acknowledge it.
func (g *GoChannel) deliver(topic string, m *message.Message) error {
	g.mu.RLock()
	subs := g.topics[topic]
	closed := g.closed
	g.mu.RUnlock()
	if closed || len(subs) == 0 {
		return ErrNotAcknowledged
	}
	for i, sub := range subs {
		msg := message.NewMessage(m.UUID, m.Payload)
		if i == 0 {
			msg.Metadata = m.Metadata
		} else {
			msg.Metadata = maps.Clone(m.Metadata)
		}
		msg.SetContext(sub.ctx)
		if !sub.hand(msg, g.closing) {
			return ErrNotAcknowledged
		}
		select {
		case <-msg.Acked():
		case <-msg.Nacked():
			return ErrNacked
		case <-sub.done:
			return ErrNotAcknowledged
		case <-g.closing:
			return ErrNotAcknowledged
		}
	}
	return nil
}

// hand gives msg to the subscriber; false when the subscription or the GoChannel
// ended first.
func (s *subscription) hand(msg *message.Message, closing <-chan struct{}) bool {
	s.sending.Lock()
	defer s.sending.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.out <- msg:
		return true
	case <-s.done:
		return false
	case <-closing:
		return false
	}
}

// Subscribe returns the messages of topic until ctx ends or the GoChannel closes.
// Acknowledge each one (the router does) for Publish to go on; a negative
// acknowledgement makes Publish return an error wrapping [ErrNacked].
func (g *GoChannel) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sub := &subscription{ctx: ctx, out: make(chan *message.Message), done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errors.New("events: subscribe to a closed GoChannel")
	}
	g.topics[topic] = append(slices.Clip(g.topics[topic]), sub)
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		select {
		case <-ctx.Done():
		case <-g.closing:
		}
		g.mu.Lock()
		g.topics[topic] = slices.DeleteFunc(slices.Clone(g.topics[topic]), func(s *subscription) bool { return s == sub })
		if len(g.topics[topic]) == 0 {
			delete(g.topics, topic)
		}
		g.mu.Unlock()
		close(sub.done)
		sub.sending.Lock()
		close(sub.out)
		sub.sending.Unlock()
	}()
	return sub.out, nil
}

// Close closes the Pub/Sub: subscriptions end, and a Publish waiting for an
// acknowledgement returns an error wrapping [ErrNotAcknowledged]. It does not wait for
// handlers: one that never returns does not hold Close.
func (g *GoChannel) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.closing)
	}
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}
