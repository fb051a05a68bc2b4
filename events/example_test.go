package events_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// AccountOpened is the payload of the examples' events.
type AccountOpened struct {
	Account string `json:"account"`
	Owner   string `json:"owner"`
}

// connect opens a pool on the examples' database and migrates it. An application
// gets its pool from provider.New and migrates with schema.Migrate(ctx, provider).
func connect(ctx context.Context) *pgxpool.Pool {
	pool, err := pgxpool.New(ctx, pgtest.URL())
	if err != nil {
		panic(err)
	}
	if err := schema.MigratePool(ctx, pool); err != nil {
		panic(err)
	}
	return pool
}

// Emit stages events on the transaction; they reach the outbox with its COMMIT.
func ExampleOutbox_Emit() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()
	tm, _ := txmanager.New(pool, txmanager.Config{})
	outbox := events.NewOutbox(events.OutboxConfig{})

	ev := events.New("example.account.opened", AccountOpened{Account: "acct-42", Owner: "Ada"},
		events.WithKey("acct-42"), events.WithType("AccountOpened"))
	err := tm.Do(ctx, func(ctx context.Context) error {
		// ... the use case's own writes, through tm.Querier(ctx) or ent ...
		return outbox.Emit(ctx, ev)
	})
	fmt.Println("committed:", err)

	pending, _ := events.ReadPending(ctx, pool, 0)
	for _, p := range pending {
		if p.ID == ev.ID {
			fmt.Println("in the outbox:", p.Topic, p.Key)
		}
	}

	// Outside a transaction there is nothing to emit on.
	err = outbox.Emit(ctx, ev)
	fmt.Println(errors.Is(err, txmanager.ErrNoTransaction))
	// Output:
	// committed: <nil>
	// in the outbox: example.account.opened acct-42
	// true
}

// A relay publishes committed events to Watermill's GoChannel, where a router's
// handler receives them.
func ExampleRelay_Run() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()
	tm, _ := txmanager.New(pool, txmanager.Config{})
	outbox := events.NewOutbox(events.OutboxConfig{})

	pubsub := events.NewGoChannel(nil)
	router, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	received := make(chan struct{})
	_, _ = events.Handle(router, pubsub, "example.greeting", func(ctx context.Context, ev events.Received[AccountOpened]) error {
		fmt.Printf("received %s for %s (key %s)\n", ev.Topic, ev.Payload.Owner, ev.Key)
		close(received)
		return nil
	})
	go func() { _ = router.Run(ctx) }()
	<-router.Running() // subscribe before relaying: GoChannel drops messages nobody subscribed to

	relay, _ := events.NewRelay(pool, pubsub, events.RelayConfig{Logger: slog.New(slog.DiscardHandler)})
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error)
	go func() { relayDone <- relay.Run(relayCtx) }()
	<-relay.Running() // listening, with its partitions

	_ = tm.Do(ctx, func(ctx context.Context) error {
		return outbox.Emit(ctx, events.New("example.greeting", AccountOpened{Account: "acct-7", Owner: "Grace"},
			events.WithKey("acct-7")))
	})
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		fmt.Println("nothing received")
	}

	// Stop the relay first, then the router and the Pub/Sub.
	stopRelay()
	fmt.Println("relay stopped:", <-relayDone)
	_ = router.Close()
	_ = pubsub.Close()
	// Output:
	// received example.greeting for Grace (key acct-7)
	// relay stopped: <nil>
}

// The Inbox middleware makes a handler's effect happen once per message, however
// often the message is delivered.
func ExampleInbox() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()
	tm, _ := txmanager.New(pool, txmanager.Config{})
	_, _ = pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_owners (account text PRIMARY KEY, owner text NOT NULL, changes int NOT NULL DEFAULT 1)`)
	_, _ = pool.Exec(ctx, `TRUNCATE example_owners`)

	pubsub := events.NewGoChannel(nil)
	router, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	inbox, _ := events.NewInbox(tm, events.InboxConfig{})
	router.AddMiddleware(inbox.Middleware)
	_, _ = events.Handle(router, pubsub, "example.account.opened",
		func(ctx context.Context, ev events.Received[AccountOpened]) error {
			// ctx carries the inbox's transaction: this write commits with the inbox row.
			_, err := tm.Querier(ctx).Exec(ctx, `INSERT INTO example_owners (account, owner) VALUES ($1, $2)
ON CONFLICT (account) DO UPDATE SET changes = example_owners.changes + 1`, ev.Payload.Account, ev.Payload.Owner)
			return err
		}, events.WithHandlerName("owners-projection"))
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	// The same message twice, as a broker may redeliver it.
	id := watermill.NewUUID()
	for range 2 {
		msg := message.NewMessage(id, []byte(`{"account":"acct-1","owner":"Ada"}`))
		_ = pubsub.Publish("example.account.opened", msg) // returns once the handler acknowledged
	}

	var changes int
	_ = pool.QueryRow(ctx, `SELECT changes FROM example_owners WHERE account = 'acct-1'`).Scan(&changes)
	fmt.Println("changes:", changes)
	_ = router.Close()
	_ = pubsub.Close()
	// Output:
	// changes: 1
}
