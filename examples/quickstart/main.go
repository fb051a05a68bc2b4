package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/examples/bank/ent/account"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/provider"
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

// Event payloads.
type (
	// AccountOpened is the payload of "account.opened".
	AccountOpened struct {
		ID      int64  `json:"id"`
		Owner   string `json:"owner"`
		Balance int64  `json:"balance"`
	}
	// TransferCompleted is the payload of "transfer.completed".
	TransferCompleted struct {
		ID     int64 `json:"id"`
		From   int64 `json:"from"`
		To     int64 `json:"to"`
		Amount int64 `json:"amount"`
	}
	// BonusGranted is the payload of "bonus.granted".
	BonusGranted struct {
		Account int64 `json:"account"`
		Amount  int64 `json:"amount"`
	}
)

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
	p, err := openFreshDatabase(ctx, srv.URL, dbName, logger)
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
	service := &bankService{client: client, tm: tm, units: units}
	alice, err := service.open(ctx, "alice", 100)
	if err != nil {
		return err
	}
	bob, err := service.open(ctx, "bob", 50)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nuse-cases:")
	err = service.transfer(ctx, alice, bob, 30, 1000)
	fmt.Fprintf(out, "  transfer 30 alice→bob with a 1000 bonus: %s\n", outcome(err))
	err = service.transfer(ctx, bob, alice, 500, 0)
	fmt.Fprintf(out, "  transfer 500 bob→alice:                  %s\n", outcome(err))

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

// openFreshDatabase drops and creates database name on the server at url and returns a
// provider connected to it.
func openFreshDatabase(ctx context.Context, url, name string, logger *slog.Logger) (*provider.Provider, error) {
	cfg, err := provider.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ApplicationName = "uno-quickstart"
	admin, err := provider.New(ctx, cfg, provider.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := admin.Admin().DropDatabase(ctx, name, provider.DropIfExists(), provider.DropForce()); err != nil {
		return nil, err
	}
	if err := admin.Admin().CreateDatabase(ctx, name); err != nil {
		return nil, err
	}
	cfg.Database = name
	return provider.New(ctx, cfg, provider.WithLogger(logger))
}

// bankService holds the use-cases.
type bankService struct {
	client *ent.Client
	tm     *txmanager.Manager
	units  *uow.Manager
}

func key(id int64) events.Option { return events.WithKey(strconv.FormatInt(id, 10)) }

// open opens an account with an initial balance.
func (b *bankService) open(ctx context.Context, owner string, balance int64) (int64, error) {
	var id int64
	err := b.units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		a, err := b.client.Account.Create().SetOwner(owner).SetBalance(balance).Save(ctx)
		if err != nil {
			return err
		}
		id = a.ID
		return u.Emit(events.New("account.opened", AccountOpened{a.ID, a.Owner, a.Balance}, key(a.ID)))
	})
	return id, err
}

// transfer moves amount from one account to another. When bonus is positive, a nested
// scope also tries to grant the receiver a bonus paid by the sender; if that fails (the
// sender cannot afford it) only the bonus is rolled back, with its event.
func (b *bankService) transfer(ctx context.Context, from, to, amount, bonus int64) error {
	return b.units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		if _, err := b.client.Account.UpdateOneID(from).AddBalance(-amount).Save(ctx); err != nil {
			return fmt.Errorf("debit account %d: %w", from, err)
		}
		if _, err := b.client.Account.UpdateOneID(to).AddBalance(amount).Save(ctx); err != nil {
			return fmt.Errorf("credit account %d: %w", to, err)
		}
		t, err := b.client.Transfer.Create().SetFromID(from).SetToID(to).SetAmount(amount).Save(ctx)
		if err != nil {
			return err
		}
		if bonus > 0 {
			// A savepoint: its failure rolls back the bonus and its event only.
			_ = b.tm.Do(ctx, func(ctx context.Context) error {
				if _, err := b.client.Account.UpdateOneID(to).AddBalance(bonus).Save(ctx); err != nil {
					return err
				}
				if err := uow.Emit(ctx, events.New("bonus.granted", BonusGranted{to, bonus}, key(to))); err != nil {
					return err
				}
				_, err := b.client.Account.UpdateOneID(from).AddBalance(-bonus).Save(ctx)
				return err
			}, txmanager.Nested())
		}
		return u.Emit(events.New("transfer.completed", TransferCompleted{t.ID, from, to, amount}, key(from)))
	})
}

func outcome(err error) string {
	if err == nil {
		return "committed"
	}
	var constraint *ent.ConstraintError
	if errors.As(err, &constraint) {
		return "rolled back (a balance would go negative)"
	}
	return "rolled back: " + err.Error()
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
	for _, topic := range []string{"account.opened", "transfer.completed", "bonus.granted"} {
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
