package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// fetchSQL reads, for each partition in $1, the first $2 rows that are due, in id
// order. A row is due unless it waits for its next attempt, or an earlier row of its
// key does (that keeps the order of a key while a row of it is retried; the partial
// index uno_outbox_retrying makes the check cheap: only failed rows are in it).
const fetchSQL = `SELECT o.id, o.partition, o.event_id, o.topic, o.key, o.type, o.payload, o.metadata::text, o.occurred_at, o.attempts
FROM unnest($1::int2[]) AS p(n)
CROSS JOIN LATERAL (
	SELECT * FROM uno_outbox o
	WHERE o.partition = p.n
	  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
	  AND (o.key = '' OR NOT EXISTS (
		SELECT 1 FROM uno_outbox b
		WHERE b.partition = o.partition AND b.key = o.key AND b.id < o.id
		  AND b.next_attempt_at IS NOT NULL AND b.next_attempt_at > now()))
	ORDER BY o.id
	LIMIT $2
) o
ORDER BY o.id`

// deleteSQL acknowledges delivered rows.
const deleteSQL = `DELETE FROM uno_outbox WHERE id = ANY($1::int8[])`

// retrySQL records failed attempts and when each row is due again.
const retrySQL = `UPDATE uno_outbox o
SET attempts = o.attempts + 1, last_error = f.err, next_attempt_at = now() + f.delay_ms * interval '1 millisecond'
FROM unnest($1::int8[], $2::text[], $3::int8[]) AS f(id, err, delay_ms)
WHERE o.id = f.id`

// deadSQL moves rows that failed their last attempt to the dead letters, in one
// statement.
const deadSQL = `WITH f AS (
	SELECT * FROM unnest($1::int8[], $2::text[]) AS f(id, err)
), moved AS (
	DELETE FROM uno_outbox o USING f WHERE o.id = f.id
	RETURNING o.id, o.event_id, o.partition, o.topic, o.key, o.type, o.payload, o.metadata, o.occurred_at, o.created_at, o.attempts, f.err
)
INSERT INTO uno_dead_letters (outbox_id, event_id, partition, topic, key, type, payload, metadata, occurred_at, created_at, attempts, last_error)
SELECT id, event_id, partition, topic, key, type, payload, metadata, occurred_at, created_at, attempts + 1, err FROM moved`

// retryAtSQL tells, per partition, in how many milliseconds its earliest row in
// back-off is due (relative, so that the relay's clock need not agree with the
// database's).
const retryAtSQL = `SELECT partition, ceil(extract(epoch FROM min(next_attempt_at) - now()) * 1000)::int8
FROM uno_outbox
WHERE partition = ANY($1::int2[]) AND next_attempt_at IS NOT NULL AND next_attempt_at > now()
GROUP BY partition`

// row is an outbox row read by a worker.
type row struct {
	id         int64
	partition  int16
	eventID    uuid.UUID
	topic      string
	key        string
	typ        string
	payload    []byte
	metadata   string
	occurredAt time.Time
	attempts   int32
}

// acks is what a worker has to tell the database about the rows it published.
type acks struct {
	delivered []int64

	retryIDs    []int64
	retryErrs   []string
	retryDelays []int64 // milliseconds
	retryParts  []int16

	deadIDs  []int64
	deadErrs []string
}

func (a *acks) empty() bool {
	return len(a.delivered) == 0 && len(a.retryIDs) == 0 && len(a.deadIDs) == 0
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
		rows, err := r.exchange(ctx, &pending, parts)
		pending = acks{}
		r.unbusy(held, parts)
		held = parts
		if err != nil {
			r.markDirty(parts...)
			return err
		}
		if len(rows) == 0 {
			continue
		}
		perPart := r.perPartition(len(parts))
		if rows = r.keepLeased(rows); len(rows) == 0 {
			continue
		}
		counts := make(map[int16]int, len(parts))
		for i := range rows {
			counts[rows[i].partition]++
		}
		var more []int16
		for p, n := range counts {
			if n >= perPart {
				more = append(more, p)
			}
		}
		skipped := r.publish(ctx, rows, &pending)
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

// keepLeased drops the rows of partitions whose lease has less than a quarter of its
// duration left (the read was slow, or renewals failed): another relay may take them
// over soon, so they are not published from here. Their partitions are marked for a
// new read once the lease is renewed.
func (r *Relay) keepLeased(rows []row) []row {
	now := time.Now()
	minLeft := r.cfg.LeaseDuration / 4
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := rows[:0]
	for _, x := range rows {
		ps := &r.parts[x.partition]
		if ps.owned && ps.validUntil.Sub(now) >= minLeft {
			kept = append(kept, x)
		} else {
			ps.dirty = true
		}
	}
	return kept
}

// perPartition is the most rows read from each of n partitions in one batch.
func (r *Relay) perPartition(n int) int {
	if n <= 1 {
		return r.cfg.BatchSize
	}
	return max((r.cfg.BatchSize+n-1)/n, 1)
}

// exchangeTimeout bounds a worker's round trip (acknowledgements and read), which
// does not stop with the relay's context.
const exchangeTimeout = 30 * time.Second

// exchange sends the acknowledgements in a and reads the next rows of parts, in one
// round trip and one (implicit) transaction: if the read fails, the acknowledgements
// are rolled back too and the rows are published again later (at least once).
// It does not stop when ctx ends, so that the rows already published are acknowledged.
func (r *Relay) exchange(ctx context.Context, a *acks, parts []int16) ([]row, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if len(a.delivered) > 0 {
		b.Queue(deleteSQL, a.delivered)
	}
	if len(a.retryIDs) > 0 {
		b.Queue(retrySQL, a.retryIDs, a.retryErrs, a.retryDelays)
	}
	if len(a.deadIDs) > 0 {
		b.Queue(deadSQL, a.deadIDs, a.deadErrs)
	}
	nAcks := b.Len()
	// The partitions whose back-off schedule to learn: those read now (a row of them
	// may wait) and those of rows that just failed.
	watch := append(append([]int16(nil), parts...), a.retryParts...)
	if len(watch) > 0 {
		b.Queue(retryAtSQL, watch)
	}
	if len(parts) > 0 {
		b.Queue(fetchSQL, parts, r.perPartition(len(parts)))
	}
	br := r.pool.SendBatch(ctx, b)
	var out []row
	err := func() error {
		for range nAcks {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("acknowledge published rows: %w", err)
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
		var x row
		for rows.Next() {
			if err := rows.Scan(&x.id, &x.partition, &x.eventID, &x.topic, &x.key, &x.typ, &x.payload,
				&x.metadata, &x.occurredAt, &x.attempts); err != nil {
				return fmt.Errorf("read the outbox: %w", err)
			}
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
	r.published.Add(uint64(len(a.delivered)))
	r.failed.Add(uint64(len(a.retryIDs) + len(a.deadIDs)))
	r.deadLettered.Add(uint64(len(a.deadIDs)))
	if len(a.deadIDs) > 0 {
		r.log.LogAttrs(ctx, slog.LevelWarn, "events: relay moved rows that kept failing to uno_dead_letters",
			slog.Int("rows", len(a.deadIDs)), slog.String("last_error", a.deadErrs[0]))
	}
	return out, nil
}

// message builds the Watermill message of a row.
func (x *row) message() *message.Message {
	msg := message.NewMessage(x.eventID.String(), x.payload)
	if x.metadata != "" && x.metadata != "{}" {
		var md map[string]string
		if err := json.Unmarshal([]byte(x.metadata), &md); err == nil {
			for k, v := range md {
				msg.Metadata[k] = v
			}
		}
	}
	msg.Metadata[MetadataTopic] = x.topic
	msg.Metadata[MetadataKey] = x.key
	msg.Metadata[MetadataType] = x.typ
	msg.Metadata[MetadataOccurredAt] = x.occurredAt.UTC().Format(time.RFC3339Nano)
	return msg
}

// publish publishes rows (in id order) and records the outcome of each in a. It
// returns the partitions of rows it left untouched (behind a failed row of their key),
// which must be read again.
func (r *Relay) publish(ctx context.Context, rows []row, a *acks) (skipped []int16) {
	var blocked map[string]struct{} // keys with a failed row in this batch
	for _, g := range planPublish(rows) {
		msgs := make([]*message.Message, 0, len(g.idx))
		live := g.idx[:0:0]
		for _, i := range g.idx {
			if _, ok := blocked[rows[i].key]; ok && rows[i].key != "" {
				skipped = append(skipped, rows[i].partition)
				continue
			}
			live = append(live, i)
			msgs = append(msgs, rows[i].message())
		}
		if len(msgs) == 0 {
			continue
		}
		err := r.pub.Publish(g.topic, msgs...)
		if err == nil {
			for _, i := range live {
				a.delivered = append(a.delivered, rows[i].id)
			}
			continue
		}
		if len(live) > 1 {
			r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay batch publish failed; publishing one by one",
				slog.String("topic", g.topic), slog.Int("messages", len(live)), slog.Any("error", err))
		}
		// Find the failing messages: one by one, in order; a failure holds the later
		// rows of its key back.
		for _, i := range live {
			x := &rows[i]
			if _, ok := blocked[x.key]; ok && x.key != "" {
				skipped = append(skipped, x.partition)
				continue
			}
			perr := err
			if len(live) > 1 {
				// A fresh message: the publisher may have changed the one it was given.
				perr = r.pub.Publish(g.topic, x.message())
			}
			if perr == nil {
				a.delivered = append(a.delivered, x.id)
				continue
			}
			r.fail(ctx, x, perr, a)
			if x.key != "" {
				if blocked == nil {
					blocked = make(map[string]struct{})
				}
				blocked[x.key] = struct{}{}
			}
		}
	}
	return skipped
}

// fail records a failed attempt of row x: a retry after back-off, or the dead letters
// after MaxAttempts.
func (r *Relay) fail(ctx context.Context, x *row, err error, a *acks) {
	msg := errorText(err)
	attempt := int(x.attempts) + 1
	if attempt >= r.cfg.MaxAttempts {
		a.deadIDs = append(a.deadIDs, x.id)
		a.deadErrs = append(a.deadErrs, msg)
		return
	}
	delay := r.retryDelay(attempt)
	a.retryIDs = append(a.retryIDs, x.id)
	a.retryErrs = append(a.retryErrs, msg)
	a.retryDelays = append(a.retryDelays, delay.Milliseconds())
	a.retryParts = append(a.retryParts, x.partition)
	r.log.LogAttrs(ctx, slog.LevelDebug, "events: relay failed to publish an event; it will be retried",
		slog.String("event_id", x.eventID.String()), slog.String("topic", x.topic), slog.String("key", x.key),
		slog.Int("attempt", attempt), slog.Duration("retry_in", delay), slog.Any("error", err))
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

// publishGroup is one Publish call: a topic and the indexes of its rows, in order.
type publishGroup struct {
	topic string
	idx   []int
}

// planPublish groups rows (in id order) into Publish calls. One call per topic when
// no key has rows under two topics in the batch (the order of every key is then kept
// within its single call); otherwise one call per run of consecutive rows of the same
// topic, which keeps the order of every key across topics.
func planPublish(rows []row) []publishGroup {
	mixed := false
	keyTopic := make(map[string]string)
	for i := range rows {
		x := &rows[i]
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
		for i := range rows {
			if n := len(groups); n > 0 && groups[n-1].topic == rows[i].topic {
				groups[n-1].idx = append(groups[n-1].idx, i)
				continue
			}
			groups = append(groups, publishGroup{topic: rows[i].topic, idx: []int{i}})
		}
		return groups
	}
	byTopic := make(map[string]int)
	for i := range rows {
		g, ok := byTopic[rows[i].topic]
		if !ok {
			g = len(groups)
			byTopic[rows[i].topic] = g
			groups = append(groups, publishGroup{topic: rows[i].topic})
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	return groups
}
