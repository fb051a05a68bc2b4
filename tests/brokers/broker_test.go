package brokers

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	nc "github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
)

const (
	amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
	natsURL = "nats://127.0.0.1:4222"
)

// requireBroker skips the test when nothing listens on addr.
func requireBroker(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("broker at %s unreachable: %v", addr, err)
	}
	_ = conn.Close()
}

// brokerRoundTrip commits events through tm.Do, relays them to pub and checks that the
// handler subscribed through sub receives each of them, in order per key, with its
// ID, key and payload.
func brokerRoundTrip(t *testing.T, e *env, pub message.Publisher, sub message.Subscriber, topic string) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string][]int{}
	ids := map[uuid.UUID]int{}
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, sub, topic, func(ctx context.Context, ev events.Received[int]) error {
			mu.Lock()
			defer mu.Unlock()
			if ids[ev.ID] > 0 {
				return nil // at least once: a redelivery
			}
			ids[ev.ID]++
			got[ev.Key] = append(got[ev.Key], ev.Payload)
			return nil
		})
		require.NoError(t, err)
	})
	relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{LeaseDuration: time.Second, Logger: quietLogger(t)})
	require.NoError(t, err)
	runRelay(t, relay)

	const keys, perKey = 3, 10
	for i := 0; i < perKey; i++ {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			for k := 0; k < keys; k++ {
				if err := e.outbox.Emit(ctx, events.New(topic, i, events.WithKey(fmt.Sprintf("k%d", k)))); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	waitFor(t, 30*time.Second, "every event through the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ids) == keys*perKey
	})
	mu.Lock()
	defer mu.Unlock()
	for k := 0; k < keys; k++ {
		assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got[fmt.Sprintf("k%d", k)], "key k%d", k)
	}
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxCount(t, e.pool) == 0 })
}

// amqpPubSub returns a publisher and a subscriber on RabbitMQ, closed at the end of the
// test; it skips the test when RabbitMQ does not answer.
func amqpPubSub(t *testing.T) (message.Publisher, message.Subscriber) {
	t.Helper()
	requireBroker(t, "127.0.0.1:5672")
	cfg := amqp.NewDurableQueueConfig(amqpURL)
	cfg.Queue.AutoDelete = true        // leave nothing on the broker
	cfg.Publish.ConfirmDelivery = true // Publish returns once the broker has the message
	logger := watermill.NopLogger{}
	pub, err := amqp.NewPublisher(cfg, logger)
	require.NoError(t, err)
	sub, err := amqp.NewSubscriber(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, pub.Close())
		assert.NoError(t, sub.Close())
	})
	return pub, sub
}

// natsPubSub returns a publisher and a subscriber on NATS JetStream, closed at the end
// of the test, which also deletes topic's stream; it skips the test when NATS does not
// answer.
func natsPubSub(t *testing.T, topic string) (message.Publisher, message.Subscriber) {
	t.Helper()
	requireBroker(t, "127.0.0.1:4222")
	js := wnats.JetStreamConfig{
		AutoProvision:    true, // one stream per topic
		TrackMsgId:       true, // the event ID as Nats-Msg-Id: the broker drops resends
		SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit()},
	}
	logger := watermill.NopLogger{}
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: natsURL, JetStream: js}, logger)
	require.NoError(t, err)
	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{
		URL: natsURL, JetStream: js, AckWaitTimeout: 10 * time.Second, CloseTimeout: 10 * time.Second,
	}, logger)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, pub.Close())
		assert.NoError(t, sub.Close())
		// Remove the stream the test provisioned.
		conn, err := nc.Connect(natsURL)
		if err == nil {
			if jsc, err := conn.JetStream(); err == nil {
				_ = jsc.DeleteStream(topic)
			}
			conn.Close()
		}
	})
	return pub, sub
}

func TestDeliveryThroughRabbitMQ(t *testing.T) {
	pub, sub := amqpPubSub(t)
	brokerRoundTrip(t, newEnv(t), pub, sub, "uno-events-test-"+uuid.NewString())
}

func TestDeliveryThroughNATSJetStream(t *testing.T) {
	topic := "uno-events-test-" + uuid.NewString()
	pub, sub := natsPubSub(t, topic)
	brokerRoundTrip(t, newEnv(t), pub, sub, topic)
}
