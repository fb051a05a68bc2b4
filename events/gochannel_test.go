package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
)

func TestGoChannelPublishReportsMessagesNoHandlerAcknowledgedOrANackFailed(t *testing.T) {
	gc := events.NewGoChannel(nil)
	defer gc.Close()

	// No subscriber: plain gochannel drops the message and says nothing.
	err := gc.Publish("nobody", message.NewMessage("m1", nil))
	require.ErrorIs(t, err, events.ErrNotAcknowledged)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := gc.Subscribe(ctx, "t")
	require.NoError(t, err)
	var seen []string
	go func() {
		for m := range msgs {
			seen = append(seen, m.UUID)
			if m.UUID == "m3" && len(seen) == 2 {
				m.Nack() // a failed delivery: reported, not redelivered
				continue
			}
			m.Ack()
		}
	}()
	err = gc.Publish("t", message.NewMessage("m2", nil), message.NewMessage("m3", nil), message.NewMessage("m4", nil))
	var de *events.DeliveryError
	require.ErrorAs(t, err, &de)
	require.ErrorIs(t, err, events.ErrNacked)
	assert.Equal(t, events.DeliveryError{Topic: "t", MessageUUID: "m3", Delivered: 1, Err: events.ErrNacked}, *de)
	require.NoError(t, gc.Publish("t", message.NewMessage("m3", nil), message.NewMessage("m4", nil)))
	assert.Equal(t, []string{"m2", "m3", "m3", "m4"}, seen, "m4 waits behind the failed m3; m3 is not redelivered by GoChannel")
}

func TestGoChannelCloseFailsAPublishWaitingForItsHandler(t *testing.T) {
	gc := events.NewGoChannel(nil)
	msgs, err := gc.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	received := make(chan struct{})
	go func() {
		<-msgs // received, never acknowledged: the handler is still running
		close(received)
	}()
	done := make(chan error, 1)
	go func() { done <- gc.Publish("t", message.NewMessage("m1", nil)) }()
	<-received
	require.NoError(t, gc.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, events.ErrNotAcknowledged)
	case <-time.After(10 * time.Second):
		t.Fatal("Publish did not return after Close")
	}
}

// An event of a topic nobody subscribes to yet stays in the outbox instead of being
// dropped, and reaches the handler once one subscribes.
func TestRelayKeepsEventsUntilAHandlerAcknowledgesThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gc := events.NewGoChannel(nil)
	t.Cleanup(func() { _ = gc.Close() })
	relay, err := events.NewRelay(e.pool, gc, events.RelayConfig{
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, Logger: quietLogger(t),
	})
	require.NoError(t, err)
	runRelay(t, relay)

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return e.outbox.Emit(ctx, events.New("late", "hello", events.WithKey("k")))
	}))
	// The relay tries, finds no subscriber, and keeps the event.
	waitFor(t, 10*time.Second, "a failed attempt", func() bool {
		var attempts int
		_ = e.pool.QueryRow(ctx, `SELECT COALESCE(max(attempts), 0) FROM uno_outbox`).Scan(&attempts)
		return attempts > 0
	})
	lag, err := relay.Lag(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, lag.Pending, "the unacknowledged event is still pending")

	got := make(chan string, 1)
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, gc, "late", func(ctx context.Context, ev events.Received[string]) error {
			got <- ev.Payload
			return nil
		})
		require.NoError(t, err)
	})
	select {
	case p := <-got:
		assert.Equal(t, "hello", p)
	case <-time.After(20 * time.Second):
		t.Fatal("the kept event was not delivered once a handler subscribed")
	}
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool { return outboxCount(t, e.pool) == 0 })
}
