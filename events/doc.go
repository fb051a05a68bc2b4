// Package events publishes domain events through a transactional outbox: an event is
// delivered to subscribers if and only if the transaction that emitted it committed,
// at least once, in order per key.
//
// # Emitting
//
// [New] builds an [Event]; [Outbox.Emit] stages it on the transaction the context
// carries (see package txmanager). Staged events follow their scope: a Nested scope
// rolled back to its savepoint drops its events, a failed attempt that the manager
// retries drops all of them. When the outermost transaction commits, the surviving
// events are written to the table uno_outbox, and the relays notified, by one statement
// sent in the round trip that carries COMMIT — an emitting transaction costs no
// extra round trip, and no relay can see an event before its transaction committed.
// The events of a transaction take one row per partition, an envelope (see
// [DecodeEnvelope]): one row for events of one key, so that the commit writes one row
// and one index entry rather than one per event.
//
//	outbox := events.NewOutbox(events.OutboxConfig{})
//	err := tm.Do(ctx, func(ctx context.Context) error {
//		// ... the use case's writes, through tm.Querier(ctx) or ent ...
//		return outbox.Emit(ctx, events.New("account.debited", Debited{ID: id, Amount: 5},
//			events.WithKey(strconv.FormatInt(id, 10))))
//	})
//
// # Relaying
//
// A [Relay] forwards the outbox's events to any Watermill message.Publisher: [NewGoChannel] in
// process, or a broker (AMQP, NATS JetStream, Kafka...). It is woken by LISTEN/NOTIFY,
// publishes in batches, keeps the order of each key, lets several relay processes
// share the work without ever sending an event from two of them at once, retries
// failed events with back-off without holding other keys back, moves events that keep
// failing to uno_dead_letters ([Requeue] puts them back) and deletes delivered
// envelopes ([ReadLag] and [ReadPending] show what waits). Run it for the life of the
// process:
//
//	relay, err := events.NewRelay(pool, pubsub, events.RelayConfig{})
//	go relay.Run(ctx)
//
// # Order
//
// The outbox row's identity is drawn when the emitting transaction commits (the
// INSERT travels with COMMIT), and the relay publishes the envelopes of a partition in
// identity order, the events of each in emission order. Transactions that change the same aggregate lock the same row and commit one
// after the other, so for them identity order is commit order. Two transactions that
// emit under one key without conflicting on any row are concurrent: their order is
// the order in which they reached COMMIT.
//
// # Subscribing
//
// [Handle] adds a typed handler to a Watermill router; the [Inbox] middleware runs
// handlers in a transaction that also records the message UUID (the event ID) in
// uno_inbox, so a redelivered message has no second effect.
//
//	inbox, _ := events.NewInbox(tm, events.InboxConfig{})
//	router.AddMiddleware(inbox.Middleware)
//	_, err = events.Handle(router, pubsub, "account.debited",
//		func(ctx context.Context, ev events.Received[Debited]) error {
//			_, err := tm.Querier(ctx).Exec(ctx, "UPDATE stats SET debits = debits + 1")
//			return err
//		})
//
// # Tables
//
// The tables are ent schemas of package schema (uno_outbox, uno_dead_letters,
// uno_inbox, uno_outbox_leases, uno_outbox_relays); schema.Migrate creates them. This
// package reads and writes them with its own SQL through pgx.
package events
