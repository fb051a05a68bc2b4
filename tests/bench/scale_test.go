package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/tests/pgtest"
)

// scaleTimeout bounds one drain and one read-back in BenchmarkScaleOut.
const scaleTimeout = 3 * time.Minute

// BenchmarkScaleOut drains a backlog of 20,000 committed events (200 transactions of
// 100, over 200 keys) from one outbox to a real broker with 1, 2 or 4 relay processes,
// each a process of its own with its own publisher, and reports events/s from the
// moment the processes are told to start until the outbox has nothing left to send
// (every event acknowledged by the broker). impl=uno runs events.Relay with its
// defaults; impl=watermill-forwarder runs components/forwarder over a watermill-sql
// subscriber (batch 1000, 10 ms poll) in the same consumer group. Both publish with
// the same Watermill publisher: NATS JetStream (a JetStream ack per message, the UUID as
// Nats-Msg-Id) or RabbitMQ (a durable queue, persistent messages, publisher confirms).
//
// After each drain, untimed, one subscriber reads every message the broker holds and
// the case reports events that came after a later event of their key (ooo-events),
// messages the broker holds twice (dup-events) and events it never got (lost-events;
// the benchmark fails if any). A broker that does not answer skips its cases.
//
// Run it with -benchtime 1x: each iteration refills the backlog and starts the processes
// (untimed).
func BenchmarkScaleOut(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dbURL := pgtest.ConnString(b)

	uno := unoRelay(b, pool)
	wm := wmImpl(b, pool, scaleWatermill, scaleForwarderTopic, scaleWMBatch, scaleWMPoll)
	wmDrained := func() (bool, error) { return wmForwarded(ctx, pool) }
	unoDrained := func() (bool, error) {
		lag, err := events.ReadLag(ctx, pool)
		return err == nil && lag.Pending == 0, err
	}
	for _, br := range scaleBrokers() {
		for _, relays := range []int{1, 2, 4} {
			for _, c := range []struct {
				impl    eventImpl
				drained func() (bool, error)
			}{{wm, wmDrained}, {uno, unoDrained}} {
				name := fmt.Sprintf("broker=%s/relays=%d/impl=%s", br.name, relays, c.impl.name)
				b.Run(name, func(b *testing.B) {
					if !br.reachable() {
						b.Skipf("no %s at %s", br.name, br.addr)
					}
					benchmarkScaleOut(b, ctx, br, relays, c.impl, c.drained, dbURL)
				})
			}
		}
	}
}

// benchmarkScaleOut is one BenchmarkScaleOut case.
func benchmarkScaleOut(b *testing.B, ctx context.Context, br broker, relays int, impl eventImpl, drained func() (bool, error), dbURL string) {
	var ooo, dup, lost int
	b.ResetTimer()
	for iter := range b.N {
		b.StopTimer()
		impl.reset(b)
		if err := br.reset(eventTopic); err != nil {
			b.Fatalf("%s: empty topic %s: %v", br.name, eventTopic, err)
		}
		fillBacklog(b, ctx, impl, relayBacklog, emitKeys)
		procs := make([]*relayProcess, relays)
		for i := range procs {
			procs[i] = startRelayProcess(b, impl.name, br, fmt.Sprintf("scale-%d-%d", iter, i), dbURL)
		}
		b.StartTimer()

		for _, p := range procs {
			if err := p.start(); err != nil {
				b.Fatalf("start a relay process: %v", err)
			}
		}
		deadline := time.Now().Add(scaleTimeout)
		for {
			done, err := drained()
			if err != nil {
				b.Fatalf("read what is left to send: %v", err)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the outbox was not drained within %v", scaleTimeout)
			}
			time.Sleep(2 * time.Millisecond)
		}
		b.StopTimer()
		for i, p := range procs {
			if err := p.stop(); err != nil {
				b.Errorf("relay process %d: %v", i, err)
			}
		}
		o, d, l := readBack(b, br)
		ooo, dup, lost = ooo+o, dup+d, lost+l
	}
	b.ReportMetric(float64(relayBacklog*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ooo)/float64(b.N), "ooo-events")
	b.ReportMetric(float64(dup)/float64(b.N), "dup-events")
	b.ReportMetric(float64(lost)/float64(b.N), "lost-events")
	b.ReportMetric(0, "ns/op")
	if lost != 0 {
		b.Errorf("%d of %d events never reached %s", lost, relayBacklog*b.N, br.name)
	}
}

// readBack reads every message br holds on eventTopic with one subscriber and returns
// the events that came after a later event of their key, the duplicates and the events
// missing.
func readBack(b *testing.B, br broker) (outOfOrder, duplicates, lost int) {
	b.Helper()
	stored, err := br.stored(eventTopic)
	if err != nil {
		b.Fatalf("%s: count the messages on %s: %v", br.name, eventTopic, err)
	}
	sub, err := br.subscriber()
	if err != nil {
		b.Fatalf("%s subscriber: %v", br.name, err)
	}
	tr := newTracker(relayBacklog)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	router.AddConsumerHandler("scale_read_back", eventTopic, sub, func(msg *message.Message) error {
		key := msg.Metadata.Get(metaKey) // Watermill's messages
		if key == "" {
			key = msg.Metadata.Get(events.MetadataKey) // uno's
		}
		tr.handle(key, msg.Metadata.Get(metaSeq))
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	deadline := time.Now().Add(scaleTimeout)
	for {
		o, d, bad := tr.counts()
		if tr.received()+d+bad >= stored {
			outOfOrder, duplicates = o, d
			if bad != 0 {
				b.Errorf("%d messages without key/seq metadata", bad)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Errorf("%s: read %d of the %d messages it holds within %v", br.name, tr.received()+d+bad, stored, scaleTimeout)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := router.Close(); err != nil {
		b.Errorf("close the router: %v", err)
	}
	if err := <-runErr; err != nil {
		b.Errorf("router: %v", err)
	}
	if err := sub.Close(); err != nil {
		b.Errorf("close the subscriber: %v", err)
	}
	return outOfOrder, duplicates, relayBacklog - tr.received()
}

// wmForwarded reports whether Watermill's forwarder has acknowledged every envelope in
// its topic's table.
func wmForwarded(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	o := wmScaleOutbox(pool)
	var done bool
	err := pool.QueryRow(ctx, `SELECT coalesce((SELECT max(offset_acked) FROM `+o.offsets.MessagesOffsetsTable(o.fwdTopic)+`), 0)
		>= coalesce((SELECT max("offset") FROM `+o.schema.MessagesTable(o.fwdTopic)+`), 0)`).Scan(&done)
	return done, err
}
