package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// eventTopic is the topic handlers subscribe to on the in-process GoChannel.
const eventTopic = "bench_happened"

// benchPayload is the payload of every benchmark event (JSON, as both uno and the
// Watermill baseline store it).
type benchPayload struct {
	Key    string `json:"key"`
	Seq    int64  `json:"seq"`
	Amount int64  `json:"amount"`
}

// eventImpl is one way to commit events in a transaction and relay them, after commit,
// to a handler on an in-process Watermill GoChannel.
type eventImpl struct {
	name string
	// reset empties the implementation's tables (outbox, offsets) and the domain table.
	reset func(tb testing.TB)
	// commit commits one transaction with one INSERT into the domain table and evs.
	commit func(ctx context.Context, evs []eventRef) error
	// start starts the relay and a handler that reports each message to tr; stop stops
	// both and waits for them.
	start func(tb testing.TB, tr *tracker) (stop func())
}

// wmOutbox is Watermill's own outbox: the watermill-sql v4 publisher on the pgx
// transaction, wrapped by components/forwarder's publisher (envelope to a forwarder topic
// table), and the forwarder (a watermill-sql subscriber) that moves the rows to GoChannel.
type wmOutbox struct {
	pool     *pgxpool.Pool
	fwdTopic string
	schema   wsql.DefaultPostgreSQLSchema
	offsets  wsql.DefaultPostgreSQLOffsetsAdapter
	// poll is the subscriber's PollInterval (0: Watermill's default, 1 s).
	poll time.Duration
	// gochannel is the GoChannel configuration (zero: Watermill's defaults).
	gochannel gochannel.Config
}

// newWMOutbox creates the forwarder topic's tables (messages and offsets) on pool.
// batch is the subscriber's SubscribeBatchSize (0: Watermill's default, 100).
func newWMOutbox(tb testing.TB, pool *pgxpool.Pool, fwdTopic string, batch int, poll time.Duration) *wmOutbox {
	tb.Helper()
	o := &wmOutbox{
		pool:     pool,
		fwdTopic: fwdTopic,
		schema:   wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: batch},
		poll:     poll,
	}
	sub, err := o.subscriber()
	if err != nil {
		tb.Fatalf("watermill-sql subscriber: %v", err)
	}
	if err := sub.SubscribeInitialize(fwdTopic); err != nil {
		tb.Fatalf("watermill-sql schema: %v", err)
	}
	if err := sub.Close(); err != nil {
		tb.Fatalf("watermill-sql subscriber close: %v", err)
	}
	return o
}

func (o *wmOutbox) subscriber() (*wsql.Subscriber, error) {
	return wsql.NewSubscriber(wsql.BeginnerFromPgx(o.pool), wsql.SubscriberConfig{
		SchemaAdapter:  o.schema,
		OffsetsAdapter: o.offsets,
		PollInterval:   o.poll,
	}, watermill.NopLogger{})
}

// truncate empties the forwarder topic's messages and offsets tables.
func (o *wmOutbox) truncate(tb testing.TB) {
	tb.Helper()
	execOrFatal(tb, o.pool, "TRUNCATE "+o.schema.MessagesTable(o.fwdTopic)+", "+o.offsets.MessagesOffsetsTable(o.fwdTopic))
}

// publisher returns the publisher a use-case creates on its transaction.
func (o *wmOutbox) publisher(tx pgx.Tx) (message.Publisher, error) {
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: o.schema}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	return forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: o.fwdTopic}), nil
}

// wmMessage returns the Watermill message of event ref (JSON payload, key and seq metadata).
func wmMessage(ref eventRef) (*message.Message, error) {
	payload, err := json.Marshal(benchPayload{Key: ref.key, Seq: ref.seq, Amount: 10})
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(metaKey, ref.key)
	msg.Metadata.Set(metaSeq, strconv.FormatInt(ref.seq, 10))
	return msg, nil
}

// commit runs one pgx transaction with the domain INSERT and evs, published in one
// Publish call (onePublish) or one call per message.
func (o *wmOutbox) commit(ctx context.Context, evs []eventRef, onePublish bool) error {
	return pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, txInsertSQL, 1, "x"); err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		pub, err := o.publisher(tx)
		if err != nil {
			return err
		}
		msgs := make([]*message.Message, len(evs))
		for i, ref := range evs {
			if msgs[i], err = wmMessage(ref); err != nil {
				return err
			}
		}
		if onePublish {
			return pub.Publish(eventTopic, msgs...)
		}
		for _, m := range msgs {
			if err := pub.Publish(eventTopic, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// start runs the forwarder (watermill-sql subscriber → GoChannel) and a router handler
// on the GoChannel that reports every message to tr and acks it.
func (o *wmOutbox) start(tb testing.TB, tr *tracker) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gc := gochannel.NewGoChannel(o.gochannel, watermill.NopLogger{})

	handlers, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	handlers.AddConsumerHandler("bench_handler", eventTopic, gc, func(msg *message.Message) error {
		tr.handle(msg.Metadata.Get(metaKey), msg.Metadata.Get(metaSeq))
		return nil
	})

	sub, err := o.subscriber()
	if err != nil {
		tb.Fatal(err)
	}
	fwd, err := forwarder.NewForwarder(sub, gc, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: o.fwdTopic})
	if err != nil {
		tb.Fatal(err)
	}

	errs := make(chan error, 2)
	go func() { errs <- handlers.Run(ctx) }()
	<-handlers.Running()
	go func() { errs <- fwd.Run(ctx) }()
	<-fwd.Running()

	return func() {
		cancel()
		var failures []error
		if err := fwd.Close(); err != nil {
			failures = append(failures, fmt.Errorf("close forwarder: %w", err))
		}
		if err := handlers.Close(); err != nil {
			failures = append(failures, fmt.Errorf("close handlers: %w", err))
		}
		if err := gc.Close(); err != nil {
			failures = append(failures, fmt.Errorf("close gochannel: %w", err))
		}
		for range 2 {
			if err := <-errs; err != nil {
				failures = append(failures, err)
			}
		}
		for _, err := range failures {
			tb.Error(err)
		}
	}
}

// wmImpl returns the Watermill baseline as an eventImpl named name.
func wmImpl(tb testing.TB, pool *pgxpool.Pool, name, fwdTopic string, batch int, poll time.Duration) eventImpl {
	tb.Helper()
	o := newWMOutbox(tb, pool, fwdTopic, batch, poll)
	return eventImpl{
		name: name,
		reset: func(tb testing.TB) {
			tb.Helper()
			o.truncate(tb)
			execOrFatal(tb, pool, "TRUNCATE "+txTable)
		},
		commit: func(ctx context.Context, evs []eventRef) error { return o.commit(ctx, evs, true) },
		start:  o.start,
	}
}
