package uow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// Deposited is the payload of the "account.deposited" event.
type Deposited struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// exampleSetup connects to the test database, creates uno's tables and a table for the
// examples, and returns a pool, a transaction manager and a unit-of-work manager.
func exampleSetup(ctx context.Context) (*pgxpool.Pool, *txmanager.Manager, *uow.Manager) {
	pool, err := pgxpool.New(ctx, pgtest.URL())
	if err != nil {
		panic(err)
	}
	if err := schema.MigratePool(ctx, pool); err != nil {
		panic(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS deposits (account text, amount int8);
		TRUNCATE deposits, uno_outbox`); err != nil {
		panic(err)
	}
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		panic(err)
	}
	units, err := uow.NewManager(tm, nil)
	if err != nil {
		panic(err)
	}
	return pool, tm, units
}

// A use-case runs as one unit of work: its writes and its events commit together, or
// neither does.
func ExampleManager_Do() {
	ctx := context.Background()
	pool, tm, units := exampleSetup(ctx)
	defer pool.Close()

	deposit := func(account string, amount int64) error {
		return units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
			if amount <= 0 {
				return errors.New("amount must be positive")
			}
			if _, err := tm.Querier(ctx).Exec(ctx,
				`INSERT INTO deposits (account, amount) VALUES ($1, $2)`, account, amount); err != nil {
				return err
			}
			return u.Emit(events.New("account.deposited", Deposited{account, amount}, events.WithKey(account)))
		})
	}
	fmt.Println(deposit("alice", 100))
	fmt.Println(deposit("alice", -5))

	var rows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM deposits`).Scan(&rows)
	lag, _ := events.ReadLag(ctx, pool)
	fmt.Println("deposits:", rows, "events in the outbox:", lag.Pending)
	// Output:
	// <nil>
	// amount must be positive
	// deposits: 1 events in the outbox: 1
}

// Code deep in a use-case that holds only the context emits with uow.Emit; a nested
// scope that fails takes its events with it.
func ExampleEmit() {
	ctx := context.Background()
	pool, tm, units := exampleSetup(ctx)
	defer pool.Close()

	audit := func(ctx context.Context, what string) error {
		return uow.Emit(ctx, events.New("audit", what))
	}
	err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		if err := audit(ctx, "kept"); err != nil {
			return err
		}
		_ = tm.Do(ctx, func(ctx context.Context) error {
			_ = audit(ctx, "dropped with its savepoint")
			return errors.New("bonus failed")
		}, txmanager.Nested())
		return nil
	})
	fmt.Println(err)

	var payloads []string
	pending, _ := events.ReadPending(ctx, pool, 0) // the events waiting for a relay
	for _, p := range pending {
		payloads = append(payloads, string(p.Payload.([]byte)))
	}
	fmt.Println(payloads)
	// Output:
	// <nil>
	// ["kept"]
}

// Subscribers run on Watermill's router; the relay forwards committed events from the
// outbox to the publisher (here the in-process GoChannel).
func Example_subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, _, units := exampleSetup(ctx)
	defer pool.Close()

	logger := slog.New(slog.DiscardHandler)
	pubsub := events.NewGoChannel(logger)
	router, err := message.NewRouter(message.RouterConfig{}, nil)
	if err != nil {
		panic(err)
	}
	received := make(chan Deposited, 1)
	if _, err := events.Handle(router, pubsub, "account.deposited",
		func(ctx context.Context, ev events.Received[Deposited]) error {
			received <- ev.Payload
			return nil
		}); err != nil {
		panic(err)
	}
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	relay, err := events.NewRelay(pool, pubsub, events.RelayConfig{Logger: logger})
	if err != nil {
		panic(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	<-relay.Running()

	_ = units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		return u.Emit(events.New("account.deposited", Deposited{"bob", 42}, events.WithKey("bob")))
	})
	fmt.Printf("%+v\n", <-received)

	stopRelay()
	<-relayDone
	_ = router.Close()
	_ = pubsub.Close()
	// Output:
	// {Account:bob Amount:42}
}
