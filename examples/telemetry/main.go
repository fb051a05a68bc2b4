package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/telemetry"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// databaseName is the database the example creates afresh on every run.
const databaseName = "uno_telemetry_example"

// useCases is how many use-cases the example runs (each emits one event).
const useCases = 5

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(context.Background(), os.Stdout, logger, databaseName); err != nil {
		fmt.Fprintln(os.Stderr, "telemetry:", err)
		os.Exit(1)
	}
}

// Debited is the payload of "account.debited".
type Debited struct {
	Account int `json:"account"`
	Amount  int `json:"amount"`
}

// run wires everything on a fresh database dbName, runs the use-cases, and prints the
// scrape to out.
func run(ctx context.Context, out io.Writer, logger *slog.Logger, dbName string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// 1. OpenTelemetry: a meter provider read by the Prometheus exporter, and a tracer
	// provider (its spans would go to an exporter of your choice).
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	tp := sdktrace.NewTracerProvider()
	defer func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	}()
	tel, err := telemetry.New(telemetry.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		return err
	}

	// 2. uno, wired to it.
	srv, err := pgserver.Find(ctx, pgserver.WithLogger(logger))
	if err != nil {
		return err
	}
	defer srv.Close()
	p, err := bank.OpenFreshDatabase(ctx, srv.URL, dbName, "uno-telemetry-example", logger,
		provider.WithPgxConfig(func(c *pgxpool.Config) { c.ConnConfig.Tracer = tel.QueryTracer() }))
	if err != nil {
		return err
	}
	defer p.Close()
	if err := schema.Migrate(ctx, p); err != nil {
		return err
	}
	if err := tel.ObservePool(p.Pool()); err != nil {
		return err
	}
	unregisterOutbox, err := tel.ObserveOutbox(p.Pool())
	if err != nil {
		return err
	}
	defer unregisterOutbox()
	tm, err := txmanager.New(p.Pool(), txmanager.Config{Logger: logger, Observer: tel.TxObserver()})
	if err != nil {
		return err
	}
	units, err := uow.NewManager(tm, events.NewOutbox(events.OutboxConfig{ContextMetadata: tel.InjectMetadata}))
	if err != nil {
		return err
	}

	// 3. A subscriber (telemetry middleware, then the inbox) and a relay, over GoChannel.
	pubsub := events.NewGoChannel(logger)
	defer pubsub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NewSlogLogger(logger))
	if err != nil {
		return err
	}
	inbox, err := events.NewInbox(tm, events.InboxConfig{Logger: logger})
	if err != nil {
		return err
	}
	router.AddMiddleware(tel.Middleware, inbox.Middleware)
	handled := make(chan struct{}, useCases)
	if _, err := events.Handle(router, pubsub, "account.debited", func(ctx context.Context, ev events.Received[Debited]) error {
		handled <- struct{}{}
		return nil
	}); err != nil {
		return err
	}
	routerDone := make(chan struct{})
	go func() {
		defer close(routerDone)
		_ = router.Run(context.WithoutCancel(ctx))
	}()
	defer func() {
		_ = router.Close()
		<-routerDone
	}()
	<-router.Running()
	relay, err := events.NewRelay(p.Pool(), tel.Publisher(pubsub), events.RelayConfig{Logger: logger})
	if err != nil {
		return err
	}
	unregisterRelay, err := tel.ObserveRelay(relay)
	if err != nil {
		return err
	}
	defer unregisterRelay()
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() {
		stopRelay()
		<-relayDone
	}()

	// 4. The use-cases; one of them also tries a savepoint scope that fails.
	for i := range useCases {
		err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
			if i == 0 {
				_ = tm.Do(ctx, func(ctx context.Context) error {
					return fmt.Errorf("no bonus today")
				}, txmanager.Nested())
			}
			return u.Emit(events.New("account.debited", Debited{Account: i, Amount: 10}, events.WithKey(fmt.Sprint(i))))
		})
		if err != nil {
			return err
		}
	}
	for range useCases {
		select {
		case <-handled:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the handler: %w", ctx.Err())
		}
	}

	// 5. A scrape, as Prometheus does it.
	scrape := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer scrape.Close()
	resp, err := http.Get(scrape.URL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "uno_") || strings.HasPrefix(line, "pgxpool_") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Strings(lines)
	fmt.Fprintf(out, "GET /metrics: %s, %d lines of uno's and the pool's metrics:\n", resp.Status, len(lines))
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}
