package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
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

// GoChannel is Watermill's in-process Pub/Sub (gochannel) wired for the relay, uno's
// default transport. Use the same GoChannel as the relay's publisher and as the
// subscriber of the Watermill router.
//
// Publish hands the messages of a call to the subscribers one after the other and
// returns once each was acknowledged, so the relay deletes an event only after its
// handler succeeded, and the events of a key reach the handler in order. A message
// that was not handled ends the call with a [DeliveryError]: wrapping [ErrNacked] when
// a handler acknowledged it negatively (a router handler returned an error), or
// [ErrNotAcknowledged] when no handler acknowledged it — the topic has no subscriber,
// or the Pub/Sub closed while the handler ran. The later messages of the call are not
// handed out. Plain gochannel instead returns nil in the last two cases (the relay
// would delete an event no handler saw) and redelivers a negatively acknowledged
// message at once and without limit, holding its topic; with GoChannel the relay's
// back-off and dead letters apply, as with a broker that refuses a message.
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
	inner *gochannel.GoChannel

	mu      sync.Mutex
	pending map[string]*delivery // message UUID → its delivery, while Publish waits

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup // the forwarding goroutines of Subscribe
}

// delivery is what the subscribers did with one message of a Publish call.
type delivery struct {
	call   *publishCall
	acked  int
	nacked bool
}

// publishCall is one Publish call: once a message of it failed, the later ones are
// not handed out.
type publishCall struct {
	failed bool
}

// NewGoChannel returns a GoChannel. logger may be nil (no logging).
func NewGoChannel(logger *slog.Logger) *GoChannel {
	var wl watermill.LoggerAdapter = watermill.NopLogger{}
	if logger != nil {
		wl = watermill.NewSlogLogger(logger)
	}
	return &GoChannel{
		inner:   gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wl),
		pending: make(map[string]*delivery),
		closing: make(chan struct{}),
	}
}

// Publish delivers msgs to the subscribers of topic, one after the other, and returns
// once each was acknowledged. A message not handled ends the call with a
// [*DeliveryError] (see [GoChannel]).
func (g *GoChannel) Publish(topic string, msgs ...*message.Message) error {
	call := &publishCall{}
	g.mu.Lock()
	for _, m := range msgs {
		g.pending[m.UUID] = &delivery{call: call}
	}
	g.mu.Unlock()
	err := g.inner.Publish(topic, msgs...)

	g.mu.Lock()
	defer g.mu.Unlock()
	var derr *DeliveryError
	for i, m := range msgs {
		d := g.pending[m.UUID]
		delete(g.pending, m.UUID)
		if derr != nil || d == nil {
			continue
		}
		switch {
		case d.nacked:
			derr = &DeliveryError{Topic: topic, MessageUUID: m.UUID, Delivered: i, Err: ErrNacked}
		case d.acked == 0:
			derr = &DeliveryError{Topic: topic, MessageUUID: m.UUID, Delivered: i, Err: ErrNotAcknowledged}
		}
	}
	if err != nil {
		return fmt.Errorf("events: publish to topic %q in process: %w", topic, err)
	}
	if derr != nil {
		return derr
	}
	return nil
}

// Subscribe returns the messages of topic. Acknowledge each one (the router does) for
// Publish to return; a negative acknowledgement makes Publish return an error wrapping
// [ErrNacked].
func (g *GoChannel) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := g.inner.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	g.wg.Add(1)
	go g.forward(ctx, in, out)
	return out, nil
}

// forward hands the subscriber a copy of each message from in, records its
// acknowledgement, positive or negative, and then acknowledges it to gochannel (which
// releases Publish), so that Publish finds the outcome recorded and gochannel never
// redelivers. A message behind a failed one of its call is acknowledged to gochannel
// without being handed out.
func (g *GoChannel) forward(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	defer g.wg.Done()
	defer close(out)
	for m := range in {
		g.mu.Lock()
		d := g.pending[m.UUID]
		skip := d != nil && d.call.failed
		g.mu.Unlock()
		if skip {
			m.Ack()
			continue
		}
		cp := m.Copy()
		cp.SetContext(m.Context())
		select {
		case out <- cp:
		case <-g.closing:
			// Nobody reads any more; gochannel gives up on the message when it closes.
			continue
		case <-ctx.Done():
			// The subscription ended; gochannel closes in and gives up on the message.
			continue
		}
		select {
		case <-cp.Acked():
			g.record(m.UUID, true)
			m.Ack()
		case <-cp.Nacked():
			g.record(m.UUID, false)
			m.Ack()
		case <-g.closing:
		case <-ctx.Done():
		}
	}
}

// record notes an acknowledgement (ack) or a negative one of message id.
func (g *GoChannel) record(id string, ack bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.pending[id]
	if d == nil {
		return
	}
	if ack {
		d.acked++
		return
	}
	d.nacked = true
	d.call.failed = true
}

// Close closes the Pub/Sub: subscriptions end, and a Publish waiting for an
// acknowledgement returns an error wrapping [ErrNotAcknowledged]. It does not wait for
// handlers: one that never returns does not hold Close.
func (g *GoChannel) Close() error {
	g.closeOnce.Do(func() { close(g.closing) })
	err := g.inner.Close()
	g.wg.Wait()
	return err
}
