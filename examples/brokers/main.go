package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
	"github.com/uno-framework/uno/uow"
)

// options are the command's flags.
type options struct {
	broker   string // nats or rabbitmq
	natsURL  string
	amqpURL  string
	database string
}

func main() {
	var o options
	flag.StringVar(&o.broker, "broker", "nats", "where the relay publishes: nats (JetStream) or rabbitmq")
	flag.StringVar(&o.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	flag.StringVar(&o.amqpURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	flag.StringVar(&o.database, "database", "uno_brokers_example", "database to create afresh")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, os.Stdout, logger, o); err != nil {
		fmt.Fprintln(os.Stderr, "brokers:", err)
		os.Exit(1)
	}
}

// transport is a broker's publisher and subscriber.
type transport struct {
	pub message.Publisher
	sub message.Subscriber
}

func (t transport) Close() error { return errors.Join(t.pub.Close(), t.sub.Close()) }

// newTransport connects to the broker the flags name.
func newTransport(o options) (transport, error) {
	logger := watermill.NopLogger{}
	switch o.broker {
	case "nats":
		if err := provisionStream(o.natsURL); err != nil {
			return transport{}, err
		}
		js := wnats.JetStreamConfig{
			TrackMsgId: true, // the event ID as Nats-Msg-Id: JetStream drops the relay's resends
			// The stream outlives the run: read what this run publishes only.
			SubscribeOptions: []nc.SubOpt{nc.DeliverNew(), nc.AckExplicit()},
		}
		pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: o.natsURL, JetStream: js}, logger)
		if err != nil {
			return transport{}, fmt.Errorf("connect to NATS at %s: %w", o.natsURL, err)
		}
		sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{URL: o.natsURL, JetStream: js, CloseTimeout: 10 * time.Second}, logger)
		if err != nil {
			_ = pub.Close()
			return transport{}, fmt.Errorf("connect to NATS at %s: %w", o.natsURL, err)
		}
		return transport{pub, sub}, nil
	case "rabbitmq":
		cfg := amqp.NewDurableQueueConfig(o.amqpURL)
		cfg.Publish.ConfirmDelivery = true // Publish returns once the broker has the message
		pub, err := amqp.NewPublisher(cfg, logger)
		if err != nil {
			return transport{}, fmt.Errorf("connect to RabbitMQ: %w", err)
		}
		sub, err := amqp.NewSubscriber(cfg, logger)
		if err != nil {
			_ = pub.Close()
			return transport{}, fmt.Errorf("connect to RabbitMQ: %w", err)
		}
		return transport{pub, sub}, nil
	}
	return transport{}, fmt.Errorf("-broker %q: want nats or rabbitmq", o.broker)
}

// streamName is the JetStream stream that holds the bank's topics (stream names cannot
// hold the dots of the topics, so the stream is made here rather than one per topic).
const streamName = "UNO_BANK"

// provisionStream creates the stream of the bank's topics unless it exists.
func provisionStream(url string) error {
	conn, err := nc.Connect(url)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		return fmt.Errorf("NATS JetStream: %w", err)
	}
	if _, err := js.StreamInfo(streamName); err == nil {
		return nil
	}
	if _, err := js.AddStream(&nc.StreamConfig{Name: streamName, Subjects: bank.Topics()}); err != nil {
		return fmt.Errorf("create the JetStream stream %s: %w", streamName, err)
	}
	return nil
}

// started waits until running is closed, or the component's Run returned (done), or
// ctx ended.
func started(ctx context.Context, what string, running <-chan struct{}, done chan error) error {
	select {
	case <-running:
		return nil
	case err := <-done:
		done <- err // for the deferred stop
		return fmt.Errorf("%s stopped while starting: %w", what, err)
	case <-ctx.Done():
		return fmt.Errorf("%s did not start: %w", what, ctx.Err())
	}
}

// run performs the use-cases in a fresh database and prints what the subscriber got
// back from the broker.
func run(ctx context.Context, out io.Writer, logger *slog.Logger, o options) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tr, err := newTransport(o)
	if err != nil {
		return err
	}
	defer tr.Close()

	srv, err := pgserver.Find(ctx, pgserver.WithLogger(logger))
	if err != nil {
		return err
	}
	defer srv.Close()
	p, err := bank.OpenFreshDatabase(ctx, srv.URL, o.database, "uno-brokers-example", logger)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := schema.Migrate(ctx, p); err != nil {
		return err
	}
	if err := bank.MigratePool(ctx, p.Pool()); err != nil {
		return err
	}
	tm, err := txmanager.New(p.Pool(), txmanager.Config{Logger: logger})
	if err != nil {
		return err
	}
	units, err := uow.NewManager(tm, nil)
	if err != nil {
		return err
	}

	// The subscriber: Watermill's router on the broker, uno's inbox (a redelivered
	// message has no second effect), one handler for every topic.
	got := &received{changed: make(chan struct{}, 1)}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NewSlogLogger(logger))
	if err != nil {
		return err
	}
	inbox, err := events.NewInbox(tm, events.InboxConfig{Logger: logger})
	if err != nil {
		return err
	}
	router.AddMiddleware(inbox.Middleware)
	for _, topic := range bank.Topics() {
		if _, err := events.Handle(router, tr.sub, topic, got.handle); err != nil {
			return err
		}
	}
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(context.WithoutCancel(ctx)) }()
	defer func() {
		_ = router.Close()
		<-routerDone
	}()
	if err := started(ctx, "the router", router.Running(), routerDone); err != nil {
		return err
	}

	// The relay: the outbox to the broker.
	relay, err := events.NewRelay(p.Pool(), tr.pub, events.RelayConfig{Logger: logger})
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() {
		stopRelay()
		<-relayDone
	}()
	if err := started(ctx, "the relay", relay.Running(), relayDone); err != nil {
		return err
	}

	// The quickstart's use-cases.
	service := &bank.Service{Client: ent.NewClient(ent.Driver(entdriver.New(tm))), TM: tm, Units: units}
	alice, err := service.Open(ctx, "alice", 100)
	if err != nil {
		return err
	}
	bob, err := service.Open(ctx, "bob", 50)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "relay publishing to %s\nuse-cases:\n", o.broker)
	fmt.Fprintf(out, "  transfer 30 alice→bob with a 1000 bonus: %s\n", bank.Outcome(service.Transfer(ctx, alice, bob, 30, 1000)))
	fmt.Fprintf(out, "  transfer 500 bob→alice:                  %s\n", bank.Outcome(service.Transfer(ctx, bob, alice, 500, 0)))

	// Three events committed: two accounts opened, one transfer.
	lines, err := got.wait(ctx, 3)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "events received through %s (%d):\n", o.broker, len(lines))
	for _, l := range lines {
		fmt.Fprintln(out, "  "+l)
	}
	return nil
}

// received records the events the subscriber handled, one line each.
type received struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func (r *received) handle(_ context.Context, ev events.Received[map[string]any]) error {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf("%-18s key=%s %v", ev.Topic, ev.Key, ev.Payload))
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the lines once there are n, and a little later, so that an event that
// should not have been delivered would show up too.
func (r *received) wait(ctx context.Context, n int) ([]string, error) {
	for {
		r.mu.Lock()
		got := len(r.lines)
		r.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-r.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d events, got %d: %w", n, got, ctx.Err())
		}
	}
	time.Sleep(500 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...), nil
}
