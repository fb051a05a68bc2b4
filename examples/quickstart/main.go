package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/examples/bank/ent/account"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
	"github.com/uno-framework/uno/uow"
)

// databaseName is the database the quickstart creates afresh on every run.
const databaseName = "uno_quickstart"

// committedEvents is how many events the use-cases of run commit: two accounts
// opened and one transfer.
const committedEvents = 3

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, os.Stdout, logger, databaseName); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run performs the demo in a fresh database named dbName and prints to out.
func run(ctx context.Context, out io.Writer, logger *slog.Logger, dbName string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// 1. A PostgreSQL server and a fresh database on it.
	srv, err := pgserver.Find(ctx, pgserver.WithLogger(logger))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "PostgreSQL from %s\n", srv.Source)
	p, err := bank.OpenFreshDatabase(ctx, srv.URL, dbName, "uno-quickstart", logger)
	if err != nil {
		return err
	}
	defer p.Close()
	report, err := p.Health(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "health: reachable=%t latency=%s server=%s in_recovery=%t\n",
		report.Reachable, report.Latency.Round(time.Microsecond), report.ServerVersion, report.InRecovery)

	// 2. Tables (uno's own, then the application's), transaction manager, ent client,
	// units of work.
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
	client := ent.NewClient(ent.Driver(entdriver.New(tm)))
	units, err := uow.NewManager(tm, nil)
	if err != nil {
		return err
	}

	// 3. A subscriber (idempotent through the inbox) and a relay, over GoChannel.
	pubsub := events.NewGoChannel(logger)
	defer pubsub.Close()
	sub, err := startSubscriber(ctx, tm, pubsub, logger)
	if err != nil {
		return err
	}
	defer sub.close()
	relay, err := events.NewRelay(p.Pool(), pubsub, events.RelayConfig{Logger: logger})
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
	select {
	case <-relay.Running(): // listening, with its partitions: events committed from now on go out at once
	case err := <-relayDone:
		relayDone <- err // for the deferred stop
		return err
	}

	// 4. The use-cases.
	service := &bank.Service{Client: client, TM: tm, Units: units}
	alice, err := service.Open(ctx, "alice", 100)
	if err != nil {
		return err
	}
	bob, err := service.Open(ctx, "bob", 50)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nuse-cases:")
	err = service.Transfer(ctx, alice, bob, 30, 1000)
	fmt.Fprintf(out, "  transfer 30 alice→bob with a 1000 bonus: %s\n", bank.Outcome(err))
	err = service.Transfer(ctx, bob, alice, 500, 0)
	fmt.Fprintf(out, "  transfer 500 bob→alice:                  %s\n", bank.Outcome(err))

	// 5. What the subscriber saw: the committed events, and nothing else.
	received, err := sub.wait(ctx, committedEvents)
	if err != nil {
		return err
	}
	lag, err := relay.Lag(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nevents received by the subscriber (%d; still in the outbox: %d):\n", len(received), lag.Pending)
	for _, line := range received {
		fmt.Fprintln(out, "  "+line)
	}
	accounts, err := client.Account.Query().Order(ent.Asc(account.FieldID)).All(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nfinal balances:")
	for _, a := range accounts {
		fmt.Fprintf(out, "  %-6s %4d\n", a.Owner, a.Balance)
	}
	return nil
}

// subscriber records every event it handles, as a line of text.
type subscriber struct {
	router *message.Router
	done   chan struct{}

	mu       sync.Mutex
	received []string
	changed  chan struct{}
}

func startSubscriber(ctx context.Context, tm *txmanager.Manager, pubsub message.Subscriber, logger *slog.Logger) (*subscriber, error) {
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NewSlogLogger(logger))
	if err != nil {
		return nil, err
	}
	inbox, err := events.NewInbox(tm, events.InboxConfig{Logger: logger})
	if err != nil {
		return nil, err
	}
	router.AddMiddleware(inbox.Middleware)
	s := &subscriber{router: router, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	for _, topic := range bank.Topics() {
		if _, err := events.Handle(router, pubsub, topic, s.handle); err != nil {
			return nil, err
		}
	}
	go func() {
		defer close(s.done)
		_ = router.Run(context.WithoutCancel(ctx))
	}()
	select {
	case <-router.Running():
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handle is the handler of every topic: it records the event.
func (s *subscriber) handle(_ context.Context, ev events.Received[map[string]any]) error {
	s.record(fmt.Sprintf("%-18s key=%s %v", ev.Topic, ev.Key, ev.Payload))
	return nil
}

func (s *subscriber) record(line string) {
	s.mu.Lock()
	s.received = append(s.received, line)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// wait returns the received events once there are at least n, and a little later, so
// that an event that should not have been delivered would show up too.
func (s *subscriber) wait(ctx context.Context, n int) ([]string, error) {
	for {
		s.mu.Lock()
		got := len(s.received)
		s.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d events, got %d: %w", n, got, ctx.Err())
		}
	}
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...), nil
}

func (s *subscriber) close() {
	_ = s.router.Close()
	<-s.done
}
