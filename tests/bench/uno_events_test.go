package bench

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// unoTables are the tables of the events package, emptied between runs.
const unoTables = "uno_outbox, uno_dead_letters, uno_inbox, uno_outbox_leases, uno_outbox_relays"

// migrated makes the package database's uno tables exist once per test binary.
var migrated struct {
	once sync.Once
	err  error
}

// migrate creates uno's tables (schema.Migrate) in the package database.
func migrate(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	migrated.once.Do(func() {
		migrated.err = schema.MigratePool(context.Background(), pool)
	})
	if migrated.err != nil {
		tb.Fatalf("schema.Migrate: %v", migrated.err)
	}
}

// unoEvents is uno's outbox: a unit of work (uow.Manager.Do over txmanager, events
// emitted with UnitOfWork.Emit into events.Outbox), and events.Relay to the GoChannel of
// events.NewGoChannel, all with default configurations.
type unoEvents struct {
	pool  *pgxpool.Pool
	tm    *txmanager.Manager
	units *uow.Manager
}

func newUnoEvents(tb testing.TB, pool *pgxpool.Pool) *unoEvents {
	tb.Helper()
	migrate(tb, pool)
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		tb.Fatalf("txmanager.New: %v", err)
	}
	units, err := uow.NewManager(tm, events.NewOutbox(events.OutboxConfig{}))
	if err != nil {
		tb.Fatalf("uow.NewManager: %v", err)
	}
	return &unoEvents{pool: pool, tm: tm, units: units}
}

func (u *unoEvents) reset(tb testing.TB) {
	tb.Helper()
	execOrFatal(tb, u.pool, "TRUNCATE "+unoTables+", "+txTable)
}

// unoEvent returns the event of ref: the same JSON payload as the Watermill message, the
// key as the event's Key, the sequence number in its metadata.
func unoEvent(ref eventRef) events.Event {
	return events.New(eventTopic, benchPayload{Key: ref.key, Seq: ref.seq, Amount: 10},
		events.WithKey(ref.key), events.WithMetadata(metaSeq, strconv.FormatInt(ref.seq, 10)))
}

// commit runs one unit of work with the domain INSERT and evs, emitted in one Emit call
// (oneEmit) or one call per event.
func (u *unoEvents) commit(ctx context.Context, evs []eventRef, oneEmit bool) error {
	return u.units.Do(ctx, func(ctx context.Context, w *uow.UnitOfWork) error {
		if _, err := u.tm.Querier(ctx).Exec(ctx, txInsertSQL, 1, "x"); err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if !oneEmit {
			for _, ref := range evs {
				if err := w.Emit(unoEvent(ref)); err != nil {
					return err
				}
			}
			return nil
		}
		batch := make([]events.Event, len(evs))
		for i, ref := range evs {
			batch[i] = unoEvent(ref)
		}
		return w.Emit(batch...)
	})
}

// start runs a router handler on events.NewGoChannel that reports every message to tr,
// then the relay (defaults) publishing to that GoChannel.
func (u *unoEvents) start(tb testing.TB, tr *tracker) (stop func()) {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	gc := events.NewGoChannel(nil)
	handlers, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	handlers.AddConsumerHandler("bench_handler", eventTopic, gc, func(msg *message.Message) error {
		tr.handle(msg.Metadata.Get(events.MetadataKey), msg.Metadata.Get(metaSeq))
		return nil
	})
	relay, err := events.NewRelay(u.pool, gc, events.RelayConfig{Logger: quiet})
	if err != nil {
		tb.Fatalf("events.NewRelay: %v", err)
	}

	hctx, hcancel := context.WithCancel(context.Background())
	rctx, rcancel := context.WithCancel(context.Background())
	handlerErr := make(chan error, 1)
	relayErr := make(chan error, 1)
	go func() { handlerErr <- handlers.Run(hctx) }()
	<-handlers.Running()
	go func() { relayErr <- relay.Run(rctx) }()
	select {
	case <-relay.Running():
	case err := <-relayErr:
		tb.Fatalf("relay: %v", err)
	}

	return func() {
		// The relay first (a Publish to GoChannel waits for the handler), then the router.
		rcancel()
		if err := <-relayErr; err != nil {
			tb.Errorf("relay: %v", err)
		}
		hcancel()
		if err := handlers.Close(); err != nil {
			tb.Errorf("close handlers: %v", err)
		}
		if err := <-handlerErr; err != nil {
			tb.Errorf("handlers: %v", err)
		}
		if err := gc.Close(); err != nil {
			tb.Errorf("close gochannel: %v", err)
		}
	}
}

// unoEmit returns uno as an emitImpl: one Emit call with all events (oneEmit) or one per event.
func unoEmit(tb testing.TB, pool *pgxpool.Pool, oneEmit bool) emitImpl {
	tb.Helper()
	u := newUnoEvents(tb, pool)
	name := "uno-1emit"
	if !oneEmit {
		name = "uno-10emit"
	}
	return emitImpl{
		name:       name,
		reset:      u.reset,
		commit:     func(ctx context.Context, evs []eventRef) error { return u.commit(ctx, evs, oneEmit) },
		outboxRows: func(tb testing.TB) int { tb.Helper(); return countUnoEvents(tb, pool) },
	}
}

// unoEmitOneKey returns uno emitting the events of a transaction, in one Emit call,
// under a single key, as a use-case that changes one aggregate does: they share one
// outbox envelope (row), where events of ten keys spread over up to ten partitions.
func unoEmitOneKey(tb testing.TB, pool *pgxpool.Pool) emitImpl {
	tb.Helper()
	u := newUnoEvents(tb, pool)
	return emitImpl{
		name:  "uno-1emit-1key",
		reset: u.reset,
		commit: func(ctx context.Context, evs []eventRef) error {
			for i := range evs {
				evs[i].key = evs[0].key
			}
			return u.commit(ctx, evs, true)
		},
		outboxRows: func(tb testing.TB) int { tb.Helper(); return countUnoEvents(tb, pool) },
	}
}

// unoRelay returns uno as an eventImpl (events committed with one Emit per transaction).
func unoRelay(tb testing.TB, pool *pgxpool.Pool) eventImpl {
	tb.Helper()
	u := newUnoEvents(tb, pool)
	return eventImpl{
		name:   "uno",
		reset:  u.reset,
		commit: func(ctx context.Context, evs []eventRef) error { return u.commit(ctx, evs, true) },
		start:  u.start,
	}
}

// countUnoEvents returns the number of events in uno's outbox not yet relayed (its rows
// are envelopes of several events).
func countUnoEvents(tb testing.TB, pool *pgxpool.Pool) int {
	tb.Helper()
	lag, err := events.ReadLag(context.Background(), pool)
	if err != nil {
		tb.Fatalf("events.ReadLag: %v", err)
	}
	return int(lag.Pending)
}
