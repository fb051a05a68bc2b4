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

// ErrNotAcknowledged is returned by [GoChannel.Publish] for a message that no handler
// acknowledged: the topic had no subscriber, or the Pub/Sub closed before a handler
// finished. The relay keeps such an event in the outbox and publishes it again later.
var ErrNotAcknowledged = errors.New("events: no subscriber acknowledged the message (no subscriber for the topic, or the Pub/Sub is closing); it stays in the outbox and is published again")

// GoChannel is Watermill's in-process Pub/Sub (gochannel) wired for the relay, uno's
// default transport. Use the same GoChannel as the relay's publisher and as the
// subscriber of the Watermill router.
//
// Publish returns only once a handler acknowledged each message, and returns an error
// wrapping [ErrNotAcknowledged] for a message none did — because the topic has no
// subscriber, or the Pub/Sub closed while the handler ran. Plain gochannel returns nil
// in both cases, which would let the relay delete an event no handler saw. So the relay
// deletes an event only after its handler succeeded (a handler error makes GoChannel
// deliver it again), and the events of a key reach the handler one after the other, in
// order: delivery is at least once and ordered per key.
type GoChannel struct {
	inner *gochannel.GoChannel

	mu    sync.Mutex
	acked map[string]int // message UUID → acknowledgements seen, until Publish reads them

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup // the forwarding goroutines of Subscribe
}

// NewGoChannel returns a GoChannel. logger may be nil (no logging).
func NewGoChannel(logger *slog.Logger) *GoChannel {
	var wl watermill.LoggerAdapter = watermill.NopLogger{}
	if logger != nil {
		wl = watermill.NewSlogLogger(logger)
	}
	return &GoChannel{
		inner:   gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wl),
		acked:   make(map[string]int),
		closing: make(chan struct{}),
	}
}

// Publish delivers msgs to the subscribers of topic, one after the other, and returns
// once each was acknowledged. A message no subscriber acknowledged makes it return an
// error wrapping [ErrNotAcknowledged] (the messages before it were delivered).
func (g *GoChannel) Publish(topic string, msgs ...*message.Message) error {
	g.mu.Lock()
	for _, m := range msgs {
		g.acked[m.UUID] = 0
	}
	g.mu.Unlock()
	err := g.inner.Publish(topic, msgs...)

	g.mu.Lock()
	defer g.mu.Unlock()
	var missing *message.Message
	for _, m := range msgs {
		if g.acked[m.UUID] == 0 && missing == nil {
			missing = m
		}
		delete(g.acked, m.UUID)
	}
	if err != nil {
		return fmt.Errorf("events: publish to topic %q in process: %w", topic, err)
	}
	if missing != nil {
		return fmt.Errorf("events: message %s of topic %q: %w", missing.UUID, topic, ErrNotAcknowledged)
	}
	return nil
}

// Subscribe returns the messages of topic. Acknowledge each one (the router does) for
// Publish to return; a negative acknowledgement makes it come again.
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

// forward hands the subscriber a copy of each message from in and passes its
// acknowledgement back to gochannel only after recording it, so that Publish, which
// gochannel releases on that acknowledgement, finds it recorded.
func (g *GoChannel) forward(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	defer g.wg.Done()
	defer close(out)
	for m := range in {
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
			g.mu.Lock()
			if _, waiting := g.acked[m.UUID]; waiting {
				g.acked[m.UUID]++
			}
			g.mu.Unlock()
			m.Ack()
		case <-cp.Nacked():
			m.Nack()
		case <-g.closing:
		case <-ctx.Done():
		}
	}
}

// Close closes the Pub/Sub: subscriptions end, and a Publish waiting for an
// acknowledgement returns an error wrapping [ErrNotAcknowledged].
func (g *GoChannel) Close() error {
	g.closeOnce.Do(func() { close(g.closing) })
	err := g.inner.Close()
	g.wg.Wait()
	return err
}
