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
// events are written to the table uno_outbox by one statement sent in the round trip
// that carries COMMIT, and the relays are notified right after COMMIT in that same
// round trip — an emitting transaction costs no extra round trip, and no relay can see
// an event before its transaction committed.
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
//	<-relay.Running() // listening, with its partitions
//
// # Failures
//
// A delivery fails when Publish returns an error: a broker refuses the message, or,
// with [GoChannel], a router handler returns an error (the router's negative
// acknowledgement) or no handler acknowledges it. The relay then retries the event
// after RetryBackoff, doubling up to MaxRetryBackoff, holding back only the later
// events of its key, and after MaxAttempts failed attempts moves it to
// uno_dead_letters, where [Requeue] can put it back. Other keys and topics keep
// flowing meanwhile.
//
// Watermill's router middlewares combine with this. Retry retries a failing handler
// within one delivery: the relay counts one failed attempt only when Retry gives up,
// so an event is handled up to MaxAttempts × (MaxRetries+1) times before it is
// dead-lettered. PoisonQueue acknowledges a failing message after forwarding it to its
// poison topic: the relay counts it delivered, and it never reaches uno_dead_letters.
// Use one dead-letter mechanism, not both.
//
// Run returns within RelayConfig.ShutdownTimeout after its context ends, even when a
// Publish never returns (a stuck broker, a handler that blocks): what was not
// acknowledged stays in the outbox and is published again by the next relay. A relay
// that dies loses its partitions after LeaseDuration; the other relays take them over
// within 1.25 × LeaseDuration (3.75 s by default).
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
// # How the relay works
//
// Each outbox row, an envelope, holds the events one transaction emitted under one
// partition, a hash of their key ([PartitionOf]), in emission order. A relay
// publishes the envelopes of a partition only while it holds that partition's lease in
// uno_outbox_leases, so several relay processes can run at once: they never send rows
// of the same partition at the same time, and they share the partitions evenly (each
// takes its fair share, given the live relays registered in uno_outbox_relays, and
// gives back what exceeds it). Lease expiry is decided by the database clock; the
// holder counts its lease from before it asked for it, so it stops working on a
// partition before any other relay can take it over. A relay that dies loses its
// leases after LeaseDuration; one that stops returns them at once.
//
// The relay is made of four parts, each a type in a file of its own: the lease
// coordinator (relay_leases.go) holds the leases and the relay's table of partitions;
// the waker (relay_waker.go) LISTENs and marks notified partitions; the workers
// (relay_worker.go) read, publish and acknowledge; the publish planner
// (relay_plan.go) groups a batch into Publish calls. Their SQL is in relay_sql.go,
// the envelope codec in envelope.go.
//
// Inside a relay, Workers goroutines each serve a fixed share of the held partitions.
// A worker reads a batch (envelopes in id order; per partition a prefix), publishes
// their events, each envelope from its offset delivered, with one Publish call per
// topic (or per run of a topic when a key spans topics, so that the order of each key
// is kept), and acknowledges it in the round trip that reads the next batch: DELETE of
// the envelopes all of whose events were delivered, the new offset of the partly
// delivered ones (so a retry does not publish an event twice), attempts and back-off
// of the failed ones, and the move to uno_dead_letters of an event that failed
// MaxAttempts times (its envelope then goes on past it). When a batch fails, its
// messages are published one by one to find the failing ones (GoChannel's
// [DeliveryError] names it, and those before it count as delivered); the events of a key
// behind a failing event wait (in the database: an envelope in back-off holds back
// the events of its keys in later envelopes, whose other events flow), other keys go
// on.
//
// The relay is woken by NOTIFY (see [NotifyChannel]) on a connection of its own that
// it holds while running, naming the partitions written, so the commit-to-publish
// latency is one query, not a poll interval; PollInterval is the fallback. The NOTIFY
// is sent after COMMIT, in a transaction of its own that does not wait for its WAL
// flush: PostgreSQL serializes the commits of notifying transactions on a
// database-wide lock held through their flush, so a NOTIFY inside the writing
// transaction would make concurrent emitting transactions commit one at a time.
// [Outbox.Write], which runs in the caller's transaction, notifies inside it.
//
// Why leases in a table rather than FOR UPDATE SKIP LOCKED or advisory locks: row
// locks cannot keep the order of a key across relays (a second relay would skip the
// locked head of a key and send its successor), and session advisory locks vanish the
// moment a connection drops, while the relay that held them may still be publishing
// what it read. A lease outlives a connection blip, expires by the database clock, and
// its holder reads a partition only while more than half of the lease is left and
// publishes what it read only while more than a quarter is left, so two relays never
// publish events of one partition at the same time unless a Publish call outlasts a
// lease the relay could not renew.
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
// A handler can also be called directly: [Handler] returns the Watermill handler that
// Handle adds, and [NewMessage] the message the relay would publish for an event (as
// [Outbox.Staged] returns the events of a transaction that has not committed; package
// uowtest delivers them this way in tests).
//
// # Operating
//
// [ReadLag], [ReadPending], [ReadDeadLetters], [ReadDeadLetter], [Requeue] and
// [PurgeDeadLetters] are the operator's reads and writes (the uno command calls them);
// [Relay.Progress] gives a relay's counters without a query, for metrics. Set
// OutboxConfig.ContextMetadata to carry context (the trace of the emitting use-case,
// with package telemetry) in each event's metadata to its handlers.
//
// # Tables
//
// The tables are ent schemas of package schema (uno_outbox, uno_dead_letters,
// uno_inbox, uno_outbox_leases, uno_outbox_relays); schema.Migrate creates them. This
// package reads and writes them with its own SQL through pgx.
package events
