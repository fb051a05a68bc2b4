package events

// The SQL of the outbox writer, the relay and the operator reads, in one place, so that
// schema and statements are read together; TestEveryStatementPreparesAgainstTheSchema
// prepares each of them against the migrated schema.

// insertSQL writes all the envelopes of a transaction (one per partition its events
// fall in; usually one) in one statement. Arrays rather than one parameter per value:
// the statement text is the same for every transaction (prepared once per connection).
// Each keys element is a text[] literal.
const insertSQL = `INSERT INTO uno_outbox (partition, events, keys, count)
SELECT p, e, k::text[], n
FROM unnest($1::int2[], $2::bytea[], $3::text[], $4::int4[]) AS u(p, e, k, n)`

// notifySQL wakes the relays of the partitions $1 names. Sent inside a transaction, the
// notification is delivered when that transaction commits, and only then.
const notifySQL = `SELECT pg_notify('` + NotifyChannel + `', $1)`

// notifyAfterCommitSQL is notifySQL for the statements a transaction manager sends after
// COMMIT, in COMMIT's round trip: it runs in a transaction of its own, which commits
// without waiting for its WAL flush (the notification is a wake-up call; losing it in a
// crash costs one poll interval, and the events are durable with the transaction that
// wrote them). PostgreSQL serializes the commits of notifying transactions on one
// database-wide lock held through the commit's flush, so notifying inside the writing
// transaction would make concurrent writers commit one at a time.
const notifyAfterCommitSQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify('` + NotifyChannel + `', $1)`

// createLeasesSQL creates the lease rows of the partitions (once for all relays).
const createLeasesSQL = `INSERT INTO uno_outbox_leases (partition, expires_at)
SELECT g, now() FROM generate_series(0, $1::int - 1) AS g ON CONFLICT (partition) DO NOTHING`

// registerRelaySQL keeps the relay's membership row alive for one lease duration ($2
// milliseconds).
const registerRelaySQL = `INSERT INTO uno_outbox_relays (id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`

// forgetDeadRelaysSQL removes the membership rows of relays that stopped renewing them.
const forgetDeadRelaysSQL = `DELETE FROM uno_outbox_relays WHERE expires_at < now()`

// countRelaysSQL counts the live relays, which share the partitions.
const countRelaysSQL = `SELECT count(*) FROM uno_outbox_relays`

// renewLeasesSQL extends every lease the relay holds by $2 milliseconds and returns
// their partitions.
const renewLeasesSQL = `UPDATE uno_outbox_leases SET expires_at = now() + $2 * interval '1 millisecond'
WHERE owner = $1 RETURNING partition`

// releaseLeasesSQL gives back the relay's leases of the partitions $2.
const releaseLeasesSQL = `UPDATE uno_outbox_leases SET owner = NULL, expires_at = now()
WHERE owner = $1 AND partition = ANY($2)`

// claimLeasesSQL takes up to $2 free or expired leases for $3 milliseconds.
const claimLeasesSQL = `WITH c AS (
	SELECT partition FROM uno_outbox_leases
	WHERE owner IS NULL OR expires_at < now()
	ORDER BY partition
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE uno_outbox_leases l SET owner = $1, expires_at = now() + $3 * interval '1 millisecond'
FROM c WHERE l.partition = c.partition
RETURNING l.partition`

// unregisterRelaySQL removes the relay's membership row when it stops.
const unregisterRelaySQL = `DELETE FROM uno_outbox_relays WHERE id = $1`

// fetchSQL reads, for each partition in $1, the first $2 envelopes that are due, in id
// order, with the keys that earlier envelopes in back-off hold back (blocked). An
// envelope is due unless it waits for its next attempt, or every key it still has to
// publish is held back by an earlier envelope in back-off (that keeps the order of a
// key while an event of it is retried; the relay publishes the events of the other
// keys of a partly held envelope and keeps the rest). The partial index
// uno_outbox_retrying makes the check cheap: only failed envelopes are in it.
const fetchSQL = `SELECT o.id, o.partition, o.events, o.delivered, o.attempts, o.created_at, o.blocked
FROM unnest($1::int2[]) AS p(n)
CROSS JOIN LATERAL (
	SELECT o.id, o.partition, o.events, o.delivered, o.attempts, o.created_at, bl.keys AS blocked
	FROM uno_outbox o
	LEFT JOIN LATERAL (
		SELECT array_agg(DISTINCT k) AS keys
		FROM uno_outbox b CROSS JOIN LATERAL unnest(b.keys) AS k
		WHERE b.partition = o.partition AND b.id < o.id
		  AND b.next_attempt_at IS NOT NULL AND b.next_attempt_at > now() AND k <> ''
	) bl ON true
	WHERE o.partition = p.n
	  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
	  AND NOT (o.keys <@ COALESCE(bl.keys, '{}'::text[]))
	ORDER BY o.id
	LIMIT $2
) o
ORDER BY o.id`

// deleteSQL acknowledges envelopes whose events were all published (or dead-lettered).
const deleteSQL = `DELETE FROM uno_outbox o
USING unnest($1::int2[], $2::int8[]) AS d(p, id)
WHERE o.partition = d.p AND o.id = d.id`

// updateSQL records the progress of envelopes with events left: how many of their first
// events are done (delivered), or, when the done events are not a prefix, the events
// left (rewrite); the keys still to publish; and the outcome of the attempt (a back-off
// when delay_ms >= 0).
const updateSQL = `UPDATE uno_outbox o SET
	delivered = u.delivered,
	events = CASE WHEN u.rewrite THEN u.events ELSE o.events END,
	count = u.count,
	keys = u.keys::text[],
	attempts = u.attempts,
	next_attempt_at = CASE WHEN u.delay_ms >= 0 THEN now() + u.delay_ms * interval '1 millisecond' END,
	last_error = CASE WHEN u.delay_ms >= 0 THEN u.err END
FROM unnest($1::int2[], $2::int8[], $3::int4[], $4::bool[], $5::bytea[], $6::int4[], $7::text[], $8::int4[], $9::int8[], $10::text[])
	AS u(p, id, delivered, rewrite, events, count, keys, attempts, delay_ms, err)
WHERE o.partition = u.p AND o.id = u.id`

// deadSQL writes the events that failed their last attempt to the dead letters (their
// envelopes are advanced past them by updateSQL or deleted by deleteSQL in the same
// transaction).
const deadSQL = `INSERT INTO uno_dead_letters
	(outbox_id, event_id, partition, topic, key, type, payload, metadata, occurred_at, created_at, attempts, last_error)
SELECT o, e, p, t, k, ty, pl, m::jsonb, oc, c, a, err
FROM unnest($1::int8[], $2::uuid[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[],
	$9::timestamptz[], $10::timestamptz[], $11::int4[], $12::text[])
	AS u(o, e, p, t, k, ty, pl, m, oc, c, a, err)`

// retryAtSQL tells, per partition, in how many milliseconds its earliest envelope in
// back-off is due (relative, so that the relay's clock need not agree with the
// database's).
const retryAtSQL = `SELECT partition, ceil(extract(epoch FROM min(next_attempt_at) - now()) * 1000)::int8
FROM uno_outbox
WHERE partition = ANY($1::int2[]) AND next_attempt_at IS NOT NULL AND next_attempt_at > now()
GROUP BY partition`

// requeueReadSQL reads the dead letters to requeue.
const requeueReadSQL = `SELECT id, event_id, topic, key, type, payload, metadata::text, occurred_at
FROM uno_dead_letters WHERE id = ANY($1::int8[])`

// requeueSQL moves dead letters back into the outbox as new envelopes of one event
// each (encoded by the caller, $2), in their original order, with their attempts
// reset, and wakes the relays. Only the dead letters this statement deletes are
// inserted, so two concurrent requeues of one dead letter put it back once.
const requeueSQL = `WITH moved AS (
	DELETE FROM uno_dead_letters WHERE id = ANY($1::int8[])
	RETURNING id, outbox_id, partition, key
), ins AS (
	INSERT INTO uno_outbox (partition, events, keys, count)
	SELECT m.partition, e.body, ARRAY[m.key], 1
	FROM moved m JOIN unnest($1::int8[], $2::bytea[]) AS e(id, body) ON e.id = m.id
	ORDER BY m.outbox_id, m.id
	RETURNING partition
)
SELECT count(*), pg_notify('` + NotifyChannel + `', COALESCE(string_agg(DISTINCT partition::text, ','), '')) FROM ins`

// lagSQL reads the state of the outbox for ReadLag.
const lagSQL = `SELECT
	COALESCE(sum(count - delivered), 0)::int8,
	COALESCE(sum(count - delivered) FILTER (WHERE attempts > 0), 0)::int8,
	COALESCE((extract(epoch FROM now() - min(created_at)) * 1000000)::int8, 0),
	(SELECT count(*) FROM uno_dead_letters)
FROM uno_outbox`

// pendingSQL reads the envelopes for ReadPending, in publishing order.
const pendingSQL = `SELECT id, partition, events, delivered, attempts FROM uno_outbox ORDER BY id, partition`

// deadLettersSQL reads dead letters for ReadDeadLetters, oldest first, after id $1, at
// most $2 of them.
const deadLettersSQL = `SELECT id, outbox_id, event_id, partition, topic, key, type, payload, metadata::text,
	occurred_at, created_at, attempts, last_error, failed_at
FROM uno_dead_letters WHERE id > $1 ORDER BY id LIMIT $2`

// deadLetterSQL reads one dead letter for ReadDeadLetter.
const deadLetterSQL = `SELECT id, outbox_id, event_id, partition, topic, key, type, payload, metadata::text,
	occurred_at, created_at, attempts, last_error, failed_at
FROM uno_dead_letters WHERE id = $1`

// purgeDeadLettersSQL deletes the dead letters that failed more than $1 milliseconds ago.
const purgeDeadLettersSQL = `DELETE FROM uno_dead_letters WHERE failed_at < now() - $1 * interval '1 millisecond'`
