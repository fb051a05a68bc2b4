package bench

import (
	"fmt"
	"net"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The brokers BenchmarkScaleOut publishes to: the machine's RabbitMQ and NATS JetStream.
const (
	amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
	natsURL = "nats://127.0.0.1:4222"
)

// broker is one message broker as BenchmarkScaleOut uses it: relay processes publish to
// it, one subscriber reads everything back afterwards.
type broker struct {
	name string
	// addr is where the broker listens; a case is skipped when nothing answers there.
	addr string
	// publisher returns a publisher that returns from Publish only once the broker has
	// the messages (publisher confirms, JetStream acks).
	publisher func() (message.Publisher, error)
	// subscriber returns a subscriber that reads topic from its first message.
	subscriber func() (message.Subscriber, error)
	// reset removes topic and everything in it, then creates it empty, so that what is
	// published before anyone subscribes is kept.
	reset func(topic string) error
	// stored returns how many messages the broker holds on topic.
	stored func(topic string) (int, error)
}

// reachable reports whether something accepts connections at b.addr.
func (b broker) reachable() bool {
	c, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// brokerNamed returns the broker called name (a case's broker=... value).
func brokerNamed(name string) (broker, error) {
	for _, b := range scaleBrokers() {
		if b.name == name {
			return b, nil
		}
	}
	return broker{}, fmt.Errorf("no broker named %q", name)
}

// scaleBrokers returns the brokers BenchmarkScaleOut measures.
func scaleBrokers() []broker { return []broker{natsJetStream(), rabbitMQ()} }

// natsJetStream publishes each message with a JetStream acknowledgement and its UUID as
// the Nats-Msg-Id (JetStream drops a resend within its duplicate window).
func natsJetStream() broker {
	js := wnats.JetStreamConfig{
		AutoProvision:    true,
		TrackMsgId:       true,
		SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit()},
	}
	withStream := func(f func(nc.JetStreamContext) error) error {
		conn, err := nc.Connect(natsURL)
		if err != nil {
			return err
		}
		defer conn.Close()
		jsc, err := conn.JetStream()
		if err != nil {
			return err
		}
		return f(jsc)
	}
	return broker{
		name: "nats-jetstream",
		addr: "127.0.0.1:4222",
		publisher: func() (message.Publisher, error) {
			return wnats.NewPublisher(wnats.PublisherConfig{URL: natsURL, JetStream: js}, watermill.NopLogger{})
		},
		subscriber: func() (message.Subscriber, error) {
			return wnats.NewSubscriber(wnats.SubscriberConfig{
				URL: natsURL, JetStream: js, AckWaitTimeout: 30 * time.Second, CloseTimeout: 10 * time.Second,
			}, watermill.NopLogger{})
		},
		reset: func(topic string) error {
			return withStream(func(jsc nc.JetStreamContext) error {
				if err := jsc.DeleteStream(topic); err != nil && err != nc.ErrStreamNotFound {
					return fmt.Errorf("delete stream %s: %w", topic, err)
				}
				_, err := jsc.AddStream(&nc.StreamConfig{Name: topic, Subjects: []string{topic}})
				return err
			})
		},
		stored: func(topic string) (int, error) {
			var n int
			err := withStream(func(jsc nc.JetStreamContext) error {
				info, err := jsc.StreamInfo(topic)
				if err != nil {
					return err
				}
				n = int(info.State.Msgs)
				return nil
			})
			return n, err
		},
	}
}

// rabbitMQ publishes persistent messages to a durable queue named after the topic, with
// publisher confirms, on a pool of channels (one per concurrent Publish).
func rabbitMQ() broker {
	cfg := func() amqp.Config {
		c := amqp.NewDurableQueueConfig(amqpURL)
		c.Publish.ConfirmDelivery = true
		c.Publish.ChannelPoolSize = 16
		c.Consume.Qos.PrefetchCount = 256
		return c
	}
	withChannel := func(f func(*amqp091.Channel) error) error {
		conn, err := amqp091.Dial(amqpURL)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		return f(ch)
	}
	return broker{
		name: "rabbitmq",
		addr: "127.0.0.1:5672",
		publisher: func() (message.Publisher, error) {
			return amqp.NewPublisher(cfg(), watermill.NopLogger{})
		},
		subscriber: func() (message.Subscriber, error) {
			return amqp.NewSubscriber(cfg(), watermill.NopLogger{})
		},
		reset: func(topic string) error {
			return withChannel(func(ch *amqp091.Channel) error {
				if _, err := ch.QueueDelete(topic, false, false, false); err != nil {
					return fmt.Errorf("delete queue %s: %w", topic, err)
				}
				_, err := ch.QueueDeclare(topic, true, false, false, false, nil)
				return err
			})
		},
		stored: func(topic string) (int, error) {
			var n int
			err := withChannel(func(ch *amqp091.Channel) error {
				q, err := ch.QueueDeclarePassive(topic, true, false, false, false, nil)
				n = q.Messages
				return err
			})
			return n, err
		},
	}
}
