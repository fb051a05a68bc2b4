package brokers

import (
	"context"
	"flag"
	"fmt"
	"strings"
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

// scale runs the relay scale-out measurement; it takes a minute or more and loads the
// brokers, so it is off by default.
var scale = flag.Bool("brokers.scale", false, "measure relay throughput with 1, 2 and 4 relays on each broker")

// brokerKit makes publishers and a subscriber for one broker, and removes a topic.
type brokerKit struct {
	name, addr string
	publisher  func(t *testing.T) message.Publisher
	subscriber func(t *testing.T) message.Subscriber
	drop       func(topic string)
}

func rabbitKit() brokerKit {
	cfg := func() amqp.Config {
		c := amqp.NewDurableQueueConfig(amqpURL)
		c.Queue.AutoDelete = true
		c.Publish.ConfirmDelivery = true
		return c
	}
	return brokerKit{
		name: "rabbitmq", addr: "127.0.0.1:5672",
		publisher: func(t *testing.T) message.Publisher {
			p, err := amqp.NewPublisher(cfg(), watermill.NopLogger{})
			require.NoError(t, err)
			return p
		},
		subscriber: func(t *testing.T) message.Subscriber {
			s, err := amqp.NewSubscriber(cfg(), watermill.NopLogger{})
			require.NoError(t, err)
			return s
		},
		drop: func(string) {},
	}
}

func natsKit() brokerKit {
	js := wnats.JetStreamConfig{
		AutoProvision: true, TrackMsgId: true,
		SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit()},
	}
	return brokerKit{
		name: "nats-jetstream", addr: "127.0.0.1:4222",
		publisher: func(t *testing.T) message.Publisher {
			p, err := wnats.NewPublisher(wnats.PublisherConfig{URL: natsURL, JetStream: js}, watermill.NopLogger{})
			require.NoError(t, err)
			return p
		},
		subscriber: func(t *testing.T) message.Subscriber {
			s, err := wnats.NewSubscriber(wnats.SubscriberConfig{
				URL: natsURL, JetStream: js, AckWaitTimeout: 30 * time.Second, CloseTimeout: 10 * time.Second,
			}, watermill.NopLogger{})
			require.NoError(t, err)
			return s
		},
		drop: func(topic string) {
			if conn, err := nc.Connect(natsURL); err == nil {
				if jsc, err := conn.JetStream(); err == nil {
					_ = jsc.DeleteStream(topic)
				}
				conn.Close()
			}
		},
	}
}

// scaleResult is one row of the scale-out table.
type scaleResult struct {
	broker             string
	relays             int
	events             int
	elapsed            time.Duration
	outOfOrder, dupes  int
	perRelayPartitions []int
}

func (r scaleResult) String() string {
	return fmt.Sprintf("| %s | %d | %d | %.0f | %d | %d |", r.broker, r.relays, r.events,
		float64(r.events)/r.elapsed.Seconds(), r.outOfOrder, r.dupes)
}

// TestRelayScaleOut fills the outbox with a backlog, then starts 1, 2 or 4 relays, each
// with its own publisher, and measures how fast the backlog reaches one subscriber on
// each broker, whether each key's events arrive in order, and how many arrive twice.
//
//	go test ./tests/brokers -run RelayScaleOut -brokers.scale -v
func TestRelayScaleOut(t *testing.T) {
	if !*scale {
		t.Skip("a measurement: run with -brokers.scale")
	}
	var rows []scaleResult
	for _, kit := range []brokerKit{natsKit(), rabbitKit()} {
		for _, relays := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/relays=%d", kit.name, relays), func(t *testing.T) {
				requireBroker(t, kit.addr)
				rows = append(rows, scaleOut(t, kit, relays, 10_000, 100))
			})
		}
	}
	var b strings.Builder
	b.WriteString("\n| broker | relays | events | events/s | out of order | duplicates |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r.String() + "\n")
	}
	t.Log(b.String())
}

func scaleOut(t *testing.T, kit brokerKit, relays, total, keys int) scaleResult {
	e := newEnv(t)
	ctx := context.Background()
	topic := "uno-scale-" + uuid.NewString()
	t.Cleanup(func() { kit.drop(topic) })

	// The backlog: transactions of 100 events over all keys; event i is number i/keys
	// of key i%keys.
	const perTx = 100
	for tx := 0; tx < total/perTx; tx++ {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			evs := make([]events.Event, 0, perTx)
			for i := tx * perTx; i < (tx+1)*perTx; i++ {
				evs = append(evs, events.New(topic, i/keys, events.WithKey(fmt.Sprintf("k%d", i%keys))))
			}
			return e.outbox.Emit(ctx, evs...)
		}))
	}

	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	last := map[string]int{}
	res := scaleResult{broker: kit.name, relays: relays, events: total}
	sub := kit.subscriber(t)
	t.Cleanup(func() { assert.NoError(t, sub.Close()) })
	startRouter(t, func(r *message.Router) {
		_, err := events.Handle(r, sub, topic, func(ctx context.Context, ev events.Received[int]) error {
			mu.Lock()
			defer mu.Unlock()
			seen[ev.ID]++
			if seen[ev.ID] > 1 {
				res.dupes++
				return nil
			}
			if prev, ok := last[ev.Key]; ok && ev.Payload != prev+1 || !ok && ev.Payload != 0 {
				res.outOfOrder++
			}
			last[ev.Key] = ev.Payload
			return nil
		})
		require.NoError(t, err)
	})

	start := time.Now()
	for i := range relays {
		pub := kit.publisher(t)
		t.Cleanup(func() { assert.NoError(t, pub.Close()) })
		relay, err := events.NewRelay(e.pool, pub, events.RelayConfig{
			ID: fmt.Sprintf("scale-%d", i), LeaseDuration: time.Second, Logger: quietLogger(t),
		})
		require.NoError(t, err)
		runRelay(t, relay)
	}
	waitFor(t, 5*time.Minute, "every event at the subscriber", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	})
	res.elapsed = time.Since(start)
	time.Sleep(200 * time.Millisecond) // late duplicates
	t.Logf("%v", res)
	return res
}
