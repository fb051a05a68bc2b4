package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

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

// envelope is an outbox row read by a worker, and what became of its events.
type envelope struct {
	id        int64
	partition int16
	delivered int32 // offset of events[0] in the stored envelope
	attempts  int32
	createdAt time.Time
	events    []storedEvent // the events still to publish, from delivered on
	blocked   []string      // keys held back by earlier envelopes in back-off

	// Outcome of the publishing pass.
	done    []bool // per event: published or dead-lettered
	touched bool   // an event was done or failed
	att     int32  // attempts to count a failure from (reset by a dead letter)
	failed  bool   // an event failed and waits for a retry
	failErr string
}

// item is one event of a batch: envelope env's event ev.
type item struct {
	env, ev int
}

// acks is what a worker has to tell the database about the envelopes it published.
type acks struct {
	delParts []int16
	delIDs   []int64

	updParts     []int16
	updIDs       []int64
	updDelivered []int32
	updRewrite   []bool
	updEvents    [][]byte
	updCount     []int32
	updKeys      []string
	updAttempts  []int32
	updDelays    []int64 // milliseconds; -1: no back-off
	updErrs      []string

	deadOutbox   []int64
	deadIDs      []uuid.UUID
	deadParts    []int16
	deadTopics   []string
	deadKeys     []string
	deadTypes    []string
	deadPayloads [][]byte
	deadMeta     []string
	deadAt       []time.Time
	deadCreated  []time.Time
	deadAttempts []int32
	deadErrs     []string

	retryParts []int16 // partitions with an envelope put in back-off

	published, failures int
}

func (a *acks) empty() bool {
	return len(a.delIDs) == 0 && len(a.updIDs) == 0 && len(a.deadIDs) == 0
}

// work is worker w's loop: it drains its partitions whenever woken (by NOTIFY, the
// lease coordinator, a due retry or the fallback poll) until ctx ends.
func (r *Relay) work(ctx context.Context, w int) {
	nextPoll := time.Now().Add(r.cfg.PollInterval)
	bo := newBackoff()
	t := time.NewTimer(r.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := r.drain(ctx, w); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay worker failed to read or acknowledge the outbox; retrying",
				slog.Int("worker", w), slog.Any("error", err))
			if !sleepCtx(ctx, bo.NextBackOff()) {
				return
			}
			continue
		}
		bo.Reset()
		now := time.Now()
		if !now.Before(nextPoll) {
			r.markWorkerDirty(w)
			nextPoll = now.Add(r.cfg.PollInterval)
			continue
		}
		wait := nextPoll.Sub(now)
		if due := r.nextRetry(w); !due.IsZero() {
			wait = min(wait, max(due.Sub(now), time.Millisecond))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake[w]:
		case <-t.C:
		}
	}
}

// markWorkerDirty marks all partitions of worker w as possibly holding rows.
func (r *Relay) markWorkerDirty(w int) {
	r.mu.Lock()
	for p := w; p < Partitions; p += r.cfg.Workers {
		r.parts[p].dirty = true
	}
	r.mu.Unlock()
}

// nextRetry returns the earliest known due time of a failed row in worker w's
// partitions (zero: none).
func (r *Relay) nextRetry(w int) time.Time {
	var due time.Time
	r.mu.Lock()
	for p := w; p < Partitions; p += r.cfg.Workers {
		ps := &r.parts[p]
		if ps.owned && !ps.retryAt.IsZero() && (due.IsZero() || ps.retryAt.Before(due)) {
			due = ps.retryAt
		}
	}
	r.mu.Unlock()
	return due
}

// take returns worker w's partitions that are due for a read, and marks them busy.
// A partition whose lease has less than half its duration left is skipped until the
// lease is renewed.
func (r *Relay) take(w int) []int16 {
	now := time.Now()
	minLeft := r.cfg.LeaseDuration / 2
	var out []int16
	r.mu.Lock()
	for p := w; p < Partitions; p += r.cfg.Workers {
		ps := &r.parts[p]
		if !ps.owned || ps.validUntil.Sub(now) < minLeft {
			continue
		}
		retryDue := !ps.retryAt.IsZero() && !now.Before(ps.retryAt)
		if !ps.dirty && !retryDue {
			continue
		}
		if retryDue {
			ps.retryAt = time.Time{}
		}
		ps.dirty, ps.busy = false, true
		out = append(out, int16(p))
	}
	r.mu.Unlock()
	return out
}

// unbusy clears the busy mark of the partitions in held that are not in keep.
func (r *Relay) unbusy(held, keep []int16) {
	if len(held) == 0 {
		return
	}
	r.mu.Lock()
	for _, p := range held {
		kept := false
		for _, k := range keep {
			if k == p {
				kept = true
				break
			}
		}
		if !kept {
			r.parts[p].busy = false
		}
	}
	r.mu.Unlock()
}

// drain publishes the due rows of worker w's partitions until none are left. The
// acknowledgement of a batch travels with the read of the next one; partitions stay
// busy (the coordinator keeps their leases) until their rows are acknowledged.
// drain publishes the due envelopes of worker w's partitions until none are left. The
// acknowledgement of a batch travels with the read of the next one; partitions stay
// busy (the coordinator keeps their leases) until their envelopes are acknowledged.
func (r *Relay) drain(ctx context.Context, w int) error {
	var pending acks
	var held []int16
	defer func() { r.unbusy(held, nil) }()
	for {
		var parts []int16
		if ctx.Err() == nil {
			parts = r.take(w)
		}
		if len(parts) == 0 && pending.empty() {
			return nil
		}
		envs, err := r.exchange(ctx, &pending, parts)
		pending = acks{}
		r.unbusy(held, parts)
		held = parts
		if err != nil {
			r.markDirty(parts...)
			return err
		}
		if len(envs) == 0 {
			continue
		}
		perPart := r.perPartition(len(parts))
		counts := make(map[int16]int, len(parts))
		for i := range envs {
			counts[envs[i].partition]++
		}
		if envs = r.keepLeased(envs); len(envs) == 0 {
			continue
		}
		var more []int16
		for p, n := range counts {
			if n >= perPart {
				more = append(more, p)
			}
		}
		skipped := r.publish(ctx, envs, &pending)
		more = append(more, skipped...)
		if len(more) > 0 {
			r.mu.Lock()
			for _, p := range more {
				r.parts[p].dirty = true
			}
			r.mu.Unlock()
		}
	}
}

// keepLeased drops the envelopes of partitions whose lease has less than a quarter of
// its duration left (the read was slow, or renewals failed): another relay may take
// them over soon, so they are not published from here. Their partitions are marked
// for a new read once the lease is renewed.
func (r *Relay) keepLeased(envs []envelope) []envelope {
	now := time.Now()
	minLeft := r.cfg.LeaseDuration / 4
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := envs[:0]
	for _, x := range envs {
		ps := &r.parts[x.partition]
		if ps.owned && ps.validUntil.Sub(now) >= minLeft {
			kept = append(kept, x)
		} else {
			ps.dirty = true
		}
	}
	return kept
}

// perPartition is the most envelopes read from each of n partitions in one batch.
func (r *Relay) perPartition(n int) int {
	if n <= 1 {
		return r.cfg.BatchSize
	}
	return max((r.cfg.BatchSize+n-1)/n, 1)
}

// exchangeTimeout bounds a worker's round trip (acknowledgements and read), which
// does not stop with the relay's context.
const exchangeTimeout = 30 * time.Second

// exchange sends the acknowledgements in a and reads the next envelopes of parts, in
// one round trip and one (implicit) transaction: if the read fails, the
// acknowledgements are rolled back too and the events are published again later (at
// least once). It does not stop when ctx ends, so that the events already published
// are acknowledged.
func (r *Relay) exchange(ctx context.Context, a *acks, parts []int16) ([]envelope, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if len(a.deadIDs) > 0 {
		b.Queue(deadSQL, a.deadOutbox, a.deadIDs, a.deadParts, a.deadTopics, a.deadKeys, a.deadTypes,
			a.deadPayloads, a.deadMeta, a.deadAt, a.deadCreated, a.deadAttempts, a.deadErrs)
	}
	if len(a.delIDs) > 0 {
		b.Queue(deleteSQL, a.delParts, a.delIDs)
	}
	if len(a.updIDs) > 0 {
		b.Queue(updateSQL, a.updParts, a.updIDs, a.updDelivered, a.updRewrite, a.updEvents, a.updCount,
			a.updKeys, a.updAttempts, a.updDelays, a.updErrs)
	}
	nAcks := b.Len()
	// The partitions whose back-off schedule to learn: those read now (an envelope of
	// them may wait) and those of envelopes that just failed.
	watch := append(append([]int16(nil), parts...), a.retryParts...)
	if len(watch) > 0 {
		b.Queue(retryAtSQL, watch)
	}
	if len(parts) > 0 {
		b.Queue(fetchSQL, parts, r.perPartition(len(parts)))
	}
	br := r.pool.SendBatch(ctx, b)
	var out []envelope
	err := func() error {
		for range nAcks {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("acknowledge published events: %w", err)
			}
		}
		if len(watch) > 0 {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("read the retry schedule: %w", err)
			}
			now := time.Now()
			var due [Partitions]time.Duration
			var p int16
			var ms int64
			_, err = pgx.ForEachRow(rows, []any{&p, &ms}, func() error {
				if p >= 0 && int(p) < Partitions {
					due[p] = time.Duration(max(ms, 1)) * time.Millisecond
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("read the retry schedule: %w", err)
			}
			r.mu.Lock()
			for _, p := range watch {
				if d := due[p]; d > 0 {
					r.parts[p].retryAt = now.Add(d)
				} else {
					r.parts[p].retryAt = time.Time{}
				}
			}
			r.mu.Unlock()
		}
		if len(parts) == 0 {
			return nil
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("read the outbox: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var x envelope
			var raw []byte
			if err := rows.Scan(&x.id, &x.partition, &raw, &x.delivered, &x.attempts, &x.createdAt, &x.blocked); err != nil {
				return fmt.Errorf("read the outbox: %w", err)
			}
			evs, err := decodeEnvelope(raw)
			if err != nil {
				// Not publishable by this version: leave it for an operator (or a newer
				// relay), and go on with the others.
				r.log.LogAttrs(ctx, slog.LevelError, "events: relay cannot decode an outbox envelope; it stays in uno_outbox",
					slog.Int("partition", int(x.partition)), slog.Int64("outbox_id", x.id), slog.Any("error", err))
				continue
			}
			if int(x.delivered) > len(evs) || x.delivered < 0 {
				r.log.LogAttrs(ctx, slog.LevelError, "events: relay found an outbox envelope with a bad delivered count; it stays in uno_outbox",
					slog.Int("partition", int(x.partition)), slog.Int64("outbox_id", x.id), slog.Int("delivered", int(x.delivered)))
				continue
			}
			x.events = evs[x.delivered:]
			out = append(out, x)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the outbox: %w", err)
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("acknowledge and read the outbox: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	r.published.Add(uint64(a.published))
	r.failed.Add(uint64(a.failures))
	r.deadLettered.Add(uint64(len(a.deadIDs)))
	if len(a.deadIDs) > 0 {
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay moved events that kept failing to uno_dead_letters",
			slog.Int("events", len(a.deadIDs)), slog.String("last_error", a.deadErrs[0]))
	}
	return out, nil
}

// message builds the Watermill message of a stored event.
func (x *storedEvent) message() *message.Message {
	msg := message.NewMessage(x.id.String(), x.payload)
	for i := 0; i+1 < len(x.metadata); i += 2 {
		msg.Metadata[x.metadata[i]] = x.metadata[i+1]
	}
	msg.Metadata[MetadataTopic] = x.topic
	msg.Metadata[MetadataKey] = x.key
	msg.Metadata[MetadataType] = x.typ
	msg.Metadata[MetadataOccurredAt] = x.occurredAt.UTC().Format(time.RFC3339Nano)
	return msg
}

// publish publishes the events of envs (in id order, each from its delivered offset),
// records the outcome of each envelope in a, and returns the partitions of events it
// left untouched (behind a failed event of their key), which must be read again.
//
// An event waits, unpublished, when its key is held back: by an earlier envelope in
// back-off (envelope.blocked) or by an event of this batch that failed. Events
// without key never wait. A failed event whose envelope reached MaxAttempts goes to
// the dead letters, and its key flows again.
func (r *Relay) publish(ctx context.Context, envs []envelope, a *acks) (skipped []int16) {
	items := make([]item, 0, len(envs))
	for e := range envs {
		x := &envs[e]
		x.done = make([]bool, len(x.events))
		x.att = x.attempts
		for i := range x.events {
			items = append(items, item{env: e, ev: i})
		}
	}
	var blocked map[string]struct{} // keys with a failed event in this batch
	held := func(it item) bool {
		x := &envs[it.env]
		k := x.events[it.ev].key
		if k == "" {
			return false
		}
		if _, ok := blocked[k]; ok {
			return true
		}
		return slices.Contains(x.blocked, k)
	}
	for _, g := range planPublish(envs, items) {
		msgs := make([]*message.Message, 0, len(g.items))
		live := g.items[:0:0]
		for _, it := range g.items {
			if held(it) {
				skipped = append(skipped, envs[it.env].partition)
				continue
			}
			live = append(live, it)
			msgs = append(msgs, envs[it.env].events[it.ev].message())
		}
		if len(msgs) == 0 {
			continue
		}
		err := r.pub.Publish(g.topic, msgs...)
		if err == nil {
			for _, it := range live {
				envs[it.env].done[it.ev] = true
				envs[it.env].touched = true
			}
			a.published += len(live)
			continue
		}
		if len(live) > 1 {
			r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay batch publish failed; publishing one by one",
				slog.String("topic", g.topic), slog.Int("messages", len(live)), slog.Any("error", err))
		}
		// Find the failing messages: one by one, in order; a failure holds the later
		// events of its key back.
		for _, it := range live {
			if held(it) {
				skipped = append(skipped, envs[it.env].partition)
				continue
			}
			x := &envs[it.env]
			ev := &x.events[it.ev]
			perr := err
			if len(live) > 1 {
				// A fresh message: the publisher may have changed the one it was given.
				perr = r.pub.Publish(g.topic, ev.message())
			}
			x.touched = true
			if perr == nil {
				x.done[it.ev] = true
				a.published++
				continue
			}
			if r.fail(ctx, x, it.ev, perr, a) && ev.key != "" {
				if blocked == nil {
					blocked = make(map[string]struct{})
				}
				blocked[ev.key] = struct{}{}
			}
		}
	}
	for e := range envs {
		r.settle(&envs[e], a)
	}
	return skipped
}

// fail records a failed attempt of event i of envelope x: the dead letters after
// MaxAttempts (the event is then done, and the attempts of its envelope start again),
// otherwise a retry after back-off. It reports whether the event waits for a retry.
func (r *Relay) fail(ctx context.Context, x *envelope, i int, err error, a *acks) (retry bool) {
	a.failures++
	msg := errorText(err)
	ev := &x.events[i]
	attempt := x.att + 1
	if int(attempt) >= r.cfg.MaxAttempts {
		md := "{}"
		if len(ev.metadata) > 0 {
			m := make(map[string]string, len(ev.metadata)/2)
			for j := 0; j+1 < len(ev.metadata); j += 2 {
				m[ev.metadata[j]] = ev.metadata[j+1]
			}
			if b, jerr := json.Marshal(m); jerr == nil {
				md = string(b)
			}
		}
		a.deadOutbox = append(a.deadOutbox, x.id)
		a.deadIDs = append(a.deadIDs, ev.id)
		a.deadParts = append(a.deadParts, x.partition)
		a.deadTopics = append(a.deadTopics, ev.topic)
		a.deadKeys = append(a.deadKeys, ev.key)
		a.deadTypes = append(a.deadTypes, ev.typ)
		a.deadPayloads = append(a.deadPayloads, ev.payload)
		a.deadMeta = append(a.deadMeta, md)
		a.deadAt = append(a.deadAt, ev.occurredAt)
		a.deadCreated = append(a.deadCreated, x.createdAt)
		a.deadAttempts = append(a.deadAttempts, attempt)
		a.deadErrs = append(a.deadErrs, msg)
		x.done[i] = true
		x.att = 0
		return false
	}
	if !x.failed {
		x.failed = true
		x.failErr = msg
		a.retryParts = append(a.retryParts, x.partition)
	}
	r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay failed to publish an event; it will be retried",
		slog.String("event_id", ev.id.String()), slog.String("topic", ev.topic), slog.String("key", ev.key),
		slog.Int("attempt", int(attempt)), slog.Duration("retry_in", r.retryDelay(int(attempt))), slog.Any("error", err))
	return true
}

// settle adds to a what the database must learn about envelope x after a publishing
// pass: nothing if none of its events was attempted; deletion when all are done;
// otherwise the new offset (or, when the done events are not a prefix, the events
// left), the keys left, and the back-off of a failure.
func (r *Relay) settle(x *envelope, a *acks) {
	if !x.touched {
		return
	}
	prefix := 0
	for prefix < len(x.done) && x.done[prefix] {
		prefix++
	}
	var left []storedEvent
	for i := range x.events {
		if !x.done[i] {
			left = append(left, x.events[i])
		}
	}
	if len(left) == 0 {
		a.delParts = append(a.delParts, x.partition)
		a.delIDs = append(a.delIDs, x.id)
		return
	}
	rewrite := prefix+len(left) != len(x.events)
	delivered, count := x.delivered+int32(prefix), x.delivered+int32(len(x.events))
	body := []byte{}
	if rewrite {
		encs := make([][]byte, len(left))
		for i := range left {
			encs[i] = left[i].raw
		}
		body = appendEnvelope(nil, encs)
		delivered, count = 0, int32(len(left))
	}
	attempts, delay, errText := int32(0), int64(-1), ""
	if x.failed {
		attempts = x.att + 1
		delay = r.retryDelay(int(attempts)).Milliseconds()
		errText = x.failErr
	}
	a.updParts = append(a.updParts, x.partition)
	a.updIDs = append(a.updIDs, x.id)
	a.updDelivered = append(a.updDelivered, delivered)
	a.updRewrite = append(a.updRewrite, rewrite)
	a.updEvents = append(a.updEvents, body)
	a.updCount = append(a.updCount, count)
	a.updKeys = append(a.updKeys, textArrayLiteral(keySet(left)))
	a.updAttempts = append(a.updAttempts, attempts)
	a.updDelays = append(a.updDelays, delay)
	a.updErrs = append(a.updErrs, errText)
}

// retryDelay is the wait after the attempt-th failure: RetryBackoff doubling per
// failure, capped at MaxRetryBackoff.
func (r *Relay) retryDelay(attempt int) time.Duration {
	d := r.cfg.RetryBackoff
	for i := 1; i < attempt && d < r.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, r.cfg.MaxRetryBackoff)
}

// errorText makes err storable in a text column: valid UTF-8, no NUL, bounded.
func errorText(err error) string {
	s := strings.ToValidUTF8(err.Error(), "?")
	s = strings.ReplaceAll(s, "\x00", "?")
	const maxLen = 4000
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "")
	}
	return s
}

// publishGroup is one Publish call: a topic and its events, in order.
type publishGroup struct {
	topic string
	items []item
}

// planPublish groups the events of a batch (items, in envelope id order and emission
// order) into Publish calls. One call per topic when no key has events under two
// topics in the batch (the order of every key is then kept within its single call);
// otherwise one call per run of consecutive events of the same topic, which keeps the
// order of every key across topics.
func planPublish(envs []envelope, items []item) []publishGroup {
	ev := func(it item) *storedEvent { return &envs[it.env].events[it.ev] }
	mixed := false
	keyTopic := make(map[string]string)
	for _, it := range items {
		x := ev(it)
		if x.key == "" {
			continue
		}
		if t, ok := keyTopic[x.key]; ok && t != x.topic {
			mixed = true
			break
		}
		keyTopic[x.key] = x.topic
	}
	var groups []publishGroup
	if mixed {
		for _, it := range items {
			t := ev(it).topic
			if n := len(groups); n > 0 && groups[n-1].topic == t {
				groups[n-1].items = append(groups[n-1].items, it)
				continue
			}
			groups = append(groups, publishGroup{topic: t, items: []item{it}})
		}
		return groups
	}
	byTopic := make(map[string]int)
	for _, it := range items {
		t := ev(it).topic
		g, ok := byTopic[t]
		if !ok {
			g = len(groups)
			byTopic[t] = g
			groups = append(groups, publishGroup{topic: t})
		}
		groups[g].items = append(groups[g].items, it)
	}
	return groups
}
