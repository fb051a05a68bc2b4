// Package telemetry connects uno to OpenTelemetry: traces and metrics of transactions,
// statements, the outbox, the relay and the event handlers. It plugs into the seams
// the other packages leave for it — txmanager.Config.Observer, the pool's pgx tracer
// (composed with github.com/exaring/otelpgx), events.OutboxConfig.ContextMetadata, a
// Watermill publisher decorator and middleware — so that an application that gives no
// TracerProvider or MeterProvider pays nothing.
//
// Wiring, at start-up:
//
//	tel, err := telemetry.New(telemetry.Config{TracerProvider: tp, MeterProvider: mp})
//	p, err := provider.New(ctx, cfg, provider.WithPgxConfig(func(c *pgxpool.Config) {
//		c.ConnConfig.Tracer = tel.QueryTracer() // a span per statement, under the transaction's
//	}))
//	err = tel.ObservePool(p.Pool())           // pgxpool.* metrics (otelpgx)
//	tm, err := txmanager.New(p.Pool(), txmanager.Config{Observer: tel.TxObserver()})
//	outbox := events.NewOutbox(events.OutboxConfig{ContextMetadata: tel.InjectMetadata})
//	relay, err := events.NewRelay(p.Pool(), tel.Publisher(pubsub), events.RelayConfig{})
//	err = tel.ObserveRelay(relay)             // relay counters and leases
//	err = tel.ObserveOutbox(p.Pool())         // outbox pending and oldest age
//	router.AddMiddleware(tel.Middleware, inbox.Middleware)
//
// # Traces
//
//   - A span per scope with a transaction, whether Do or Begin opened it (Begin is how
//     entdriver runs ent's own transactions and sqldriver runs database/sql's BeginTx),
//     from its start to its end (for Begin, its Commit or Rollback): "uno.tx", one per
//     attempt of a transaction, with its propagation, isolation, read-only flag,
//     attempt number and outcome (committed, rolled_back, retried, commit_unknown);
//     "uno.savepoint", one per savepoint scope, with its depth and outcome (released,
//     rolled_back); "uno.join", one per scope that joined the context's transaction,
//     with its outcome (joined, or rollback_only when it failed). Statements are
//     otelpgx's spans, children of the scope they ran in.
//   - The trace context (W3C traceparent) of the emitting scope goes into each event's
//     metadata (InjectMetadata), through the outbox and the relay into the message
//     metadata, on any transport.
//   - "uno.relay publish <topic>": one span per batch the relay publishes, a child of
//     the use-case's span when all its events come from one trace, linked to each
//     event's use-case span always.
//   - "uno.handle <topic>": the handler's span (Middleware), a child of the emitting
//     use-case's span; the Inbox's transaction, and the handler's, are children of it.
//
// # Metrics
//
//   - uno.tx.duration (s, histogram) and uno.tx.scopes (counter), by kind (transaction,
//     savepoint) and outcome; uno.tx.retries; uno.tx.savepoint.rollbacks. Joined scopes
//     are not measured: their time and outcome are their transaction's.
//   - pgxpool.* (otelpgx): acquired_connections, idle_connections, empty_acquire (the
//     acquisitions that waited), empty_acquire_wait_time, and more.
//   - uno.outbox.pending and uno.outbox.oldest_age (s): read from the database at each
//     collection.
//   - uno.relay.published, uno.relay.failed, uno.relay.dead_lettered (counters),
//     uno.relay.leases (partitions held), uno.relay.batch.size (histogram of
//     messages per Publish call), uno.relay.publish.duration (s, histogram).
package telemetry
