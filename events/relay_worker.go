package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// outboxRow is an envelope (uno_outbox row) read by a worker, and what became of its
// events.
type outboxRow struct {
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

// ackBatch is what a worker has to tell the database about the envelopes it
// published: the next exchange sends it.
type ackBatch struct {
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

func (a *ackBatch) empty() bool {
	return len(a.delIDs) == 0 && len(a.updIDs) == 0 && len(a.deadIDs) == 0
}

// relayCounters are a relay's counters since it was created.
type relayCounters struct {
	published, failed, deadLettered atomic.Uint64
}

// worker reads, publishes and acknowledges the envelopes of its share of the held
// partitions (partition mod workers == id), whenever woken: by NOTIFY, the lease
// coordinator, a due retry or the fallback poll.
//
// A Publish call cannot be interrupted. When the relay's shutdown timeout passes
// while the worker is inside one, the relay abandons it: the worker then ends as soon
// as Publish returns, without acknowledging what it published (the events stay in
// the outbox: at least once) and without touching the database again.
type worker struct {
	id       int
	pool     *pgxpool.Pool
	pub      message.Publisher
	cfg      *RelayConfig
	log      *slog.Logger
	leases   *leaseCoordinator
	counters *relayCounters

	// dbCtx is the context of the worker's database round trips: they go on after the
	// relay's context ended (to acknowledge what was published) until the shutdown
	// timeout cancels it.
	dbCtx context.Context
	// exited is closed when run returns.
	exited chan struct{}

	mu         sync.Mutex
	publishing bool // inside Publish
	abandoned  bool // the relay stopped waiting for the worker
}

// errAbandoned ends an abandoned worker's drain.
var errAbandoned = errors.New("events: relay worker abandoned by a shutdown that timed out")

// send calls Publish unless the worker was abandoned; ok is false when the worker was
// abandoned, before or during the call: its outcome must then be dropped.
func (w *worker) send(topic string, msgs ...*message.Message) (err error, ok bool) {
	w.mu.Lock()
	if w.abandoned {
		w.mu.Unlock()
		return nil, false
	}
	w.publishing = true
	w.mu.Unlock()
	err = w.pub.Publish(topic, msgs...)
	w.mu.Lock()
	w.publishing = false
	ok = !w.abandoned
	w.mu.Unlock()
	return err, ok
}

// abandon tells the worker that the relay stops waiting for it, and reports whether it
// is inside Publish (then it ends by itself once Publish returns). A worker that is not
// publishing ends soon: its database round trips are cancelled with dbCtx, and it
// publishes nothing more.
func (w *worker) abandon() (inPublish bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abandoned = true
	return w.publishing
}

// run is the worker's loop, until ctx ends.
func (w *worker) run(ctx context.Context) {
	defer close(w.exited)
	nextPoll := time.Now().Add(w.cfg.PollInterval)
	bo := newBackoff()
	t := time.NewTimer(w.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := w.drain(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, errAbandoned) {
				return
			}
			w.log.LogAttrs(ctx, slog.LevelWarn, "events: relay worker failed to read or acknowledge the outbox; retrying",
				slog.Int("worker", w.id), slog.Any("error", err))
			if !sleepCtx(ctx, bo.NextBackOff()) {
				return
			}
			continue
		}
		bo.Reset()
		now := time.Now()
		if !now.Before(nextPoll) {
			w.leases.markWorkerDirty(w.id)
			nextPoll = now.Add(w.cfg.PollInterval)
			continue
		}
		wait := nextPoll.Sub(now)
		if due := w.leases.nextRetry(w.id); !due.IsZero() {
			wait = min(wait, max(due.Sub(now), time.Millisecond))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.leases.signals[w.id]:
		case <-t.C:
		}
	}
}

// drain publishes the due envelopes of the worker's partitions until none are left.
// The acknowledgement of a batch travels with the read of the next one; partitions
// stay busy (the coordinator keeps their leases) until their envelopes are
// acknowledged.
func (w *worker) drain(ctx context.Context) error {
	var pending ackBatch
	var held []int16
	defer func() { w.leases.unbusy(held, nil) }()
	for {
		var parts []int16
		if ctx.Err() == nil {
			parts = w.leases.take(w.id)
		}
		if len(parts) == 0 && pending.empty() {
			return nil
		}
		rows, err := w.exchange(ctx, &pending, parts)
		pending = ackBatch{}
		w.leases.unbusy(held, parts)
		held = parts
		if err != nil {
			w.leases.markDirty(parts...)
			return err
		}
		if len(rows) == 0 {
			continue
		}
		perPart := w.perPartition(len(parts))
		counts := make(map[int16]int, len(parts))
		for i := range rows {
			counts[rows[i].partition]++
		}
		if rows = w.leases.stillLeased(rows); len(rows) == 0 {
			continue
		}
		var more []int16
		for p, n := range counts {
			if n >= perPart {
				more = append(more, p)
			}
		}
		skipped, ok := w.publish(ctx, rows, &pending)
		if !ok {
			return errAbandoned
		}
		more = append(more, skipped...)
		if len(more) > 0 {
			w.leases.markDirtyQuiet(more)
		}
	}
}

// perPartition is the most envelopes read from each of n partitions in one batch.
func (w *worker) perPartition(n int) int {
	if n <= 1 {
		return w.cfg.BatchSize
	}
	return max((w.cfg.BatchSize+n-1)/n, 1)
}

// exchangeTimeout bounds a worker's round trip (acknowledgements and read).
const exchangeTimeout = 30 * time.Second

// exchange sends the acknowledgements in a and reads the next envelopes of parts, in
// one round trip and one (implicit) transaction: if the read fails, the
// acknowledgements are rolled back too and the events are published again later (at
// least once). It does not stop when ctx ends, so that the events already published
// are acknowledged; the shutdown timeout stops it (dbCtx).
// are acknowledged.
func (w *worker) exchange(ctx context.Context, a *ackBatch, parts []int16) ([]outboxRow, error) {
	ctx, cancel := context.WithTimeout(w.dbCtx, exchangeTimeout)
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
		b.Queue(fetchSQL, parts, w.perPartition(len(parts)))
	}
	var out []outboxRow
	err := withConn(ctx, w.pool, func(conn *pgx.Conn) error {
		br := conn.SendBatch(ctx, b)
		err := w.readExchange(ctx, br, nAcks, watch, parts, &out)
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("acknowledge and read the outbox: %w", cerr)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	w.counters.published.Add(uint64(a.published))
	w.counters.failed.Add(uint64(a.failures))
	w.counters.deadLettered.Add(uint64(len(a.deadIDs)))
	if len(a.deadIDs) > 0 {
		w.log.LogAttrs(ctx, slog.LevelWarn, "events: relay moved events that kept failing to uno_dead_letters",
			slog.Int("events", len(a.deadIDs)), slog.String("last_error", a.deadErrs[0]))
	}
	return out, nil
}

// readExchange reads the results of an exchange's batch: the acknowledgements (nAcks
// statements), the retry schedule of watch, and the envelopes of parts into out.
func (w *worker) readExchange(ctx context.Context, br pgx.BatchResults, nAcks int, watch, parts []int16, out *[]outboxRow) error {
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
		w.leases.setRetries(watch, &due)
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
		var x outboxRow
		var raw []byte
		if err := rows.Scan(&x.id, &x.partition, &raw, &x.delivered, &x.attempts, &x.createdAt, &x.blocked); err != nil {
			return fmt.Errorf("read the outbox: %w", err)
		}
		evs, err := decodeEnvelope(raw)
		if err != nil {
			// Not publishable by this version: leave it for an operator (or a newer
			// relay), and go on with the others.
			w.log.LogAttrs(ctx, slog.LevelError, "events: relay cannot decode an outbox envelope; it stays in uno_outbox",
				slog.Int("partition", int(x.partition)), slog.Int64("outbox_id", x.id), slog.Any("error", err))
			continue
		}
		if int(x.delivered) > len(evs) || x.delivered < 0 {
			w.log.LogAttrs(ctx, slog.LevelError, "events: relay found an outbox envelope with a bad delivered count; it stays in uno_outbox",
				slog.Int("partition", int(x.partition)), slog.Int64("outbox_id", x.id), slog.Int("delivered", int(x.delivered)))
			continue
		}
		x.events = evs[x.delivered:]
		*out = append(*out, x)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	return nil
}

// message builds the Watermill message of a stored event.
func (x *storedEvent) message() *message.Message {
	msg := message.NewMessage(x.id.String(), x.payload)
	msg.Metadata = make(message.Metadata, len(x.metadata)/2+4) // no growth
	for i := 0; i+1 < len(x.metadata); i += 2 {
		msg.Metadata[x.metadata[i]] = x.metadata[i+1]
	}
	msg.Metadata[MetadataTopic] = x.topic
	msg.Metadata[MetadataKey] = x.key
	msg.Metadata[MetadataType] = x.typ
	msg.Metadata[MetadataOccurredAt] = x.occurredAt.UTC().Format(time.RFC3339Nano)
	return msg
}

// publish publishes the events of rows (in id order, each from its delivered offset),
// records the outcome of each envelope in a, and returns the partitions of events it
// left untouched (behind a failed event of their key), which must be read again.
//
// An event waits, unpublished, when its key is held back: by an earlier envelope in
// back-off (envelope.blocked) or by an event of this batch that failed. Events
// without key never wait. A failed event whose envelope reached MaxAttempts goes to
// the dead letters, and its key flows again.
//
// When a Publish call fails, its events are published one by one to find the failing
// ones, except that a [*DeliveryError] (GoChannel) tells which event failed and that
// those before it were delivered. ok is false when the worker was abandoned: a must
// then not be sent.
func (w *worker) publish(ctx context.Context, rows []outboxRow, a *ackBatch) (skipped []int16, ok bool) {
	evs := make([]rowEvent, 0, len(rows))
	for e := range rows {
		x := &rows[e]
		x.done = make([]bool, len(x.events))
		x.att = x.attempts
		for i := range x.events {
			evs = append(evs, rowEvent{row: e, ev: i})
		}
	}
	var blocked map[string]struct{} // keys with a failed event in this batch
	held := func(re rowEvent) bool {
		x := &rows[re.row]
		k := x.events[re.ev].key
		if k == "" {
			return false
		}
		if _, ok := blocked[k]; ok {
			return true
		}
		return slices.Contains(x.blocked, k)
	}
	for _, g := range planPublish(rows, evs) {
		if ctx.Err() != nil {
			break // the relay stops: what is left stays in the outbox
		}
		msgs := make([]*message.Message, 0, len(g.events))
		live := g.events[:0:0]
		for _, re := range g.events {
			if held(re) {
				skipped = append(skipped, rows[re.row].partition)
				continue
			}
			live = append(live, re)
			msgs = append(msgs, rows[re.row].events[re.ev].message())
		}
		if len(msgs) == 0 {
			continue
		}
		err, ok := w.send(g.topic, msgs...)
		if !ok {
			return nil, false
		}
		if err == nil {
			for _, re := range live {
				rows[re.row].done[re.ev] = true
				rows[re.row].touched = true
			}
			a.published += len(live)
			continue
		}
		// The events known delivered, and the one known failed (-1: unknown).
		delivered, failedAt := 0, -1
		if len(live) == 1 {
			failedAt = 0
		} else if de := (*DeliveryError)(nil); errors.As(err, &de) && de.Delivered >= 0 && de.Delivered < len(live) {
			delivered, failedAt = de.Delivered, de.Delivered
		} else {
			w.log.LogAttrs(ctx, slog.LevelDebug, "events: relay batch publish failed; publishing one by one",
				slog.String("topic", g.topic), slog.Int("messages", len(live)), slog.Any("error", err))
		}
		for _, re := range live[:delivered] {
			rows[re.row].done[re.ev] = true
			rows[re.row].touched = true
		}
		a.published += delivered
		// Find the failing messages: one by one, in order; a failure holds the later
		// events of its key back.
		for i, re := range live[delivered:] {
			if held(re) {
				skipped = append(skipped, rows[re.row].partition)
				continue
			}
			x := &rows[re.row]
			ev := &x.events[re.ev]
			perr := err
			if delivered+i != failedAt {
				// A fresh message: the publisher may have changed the one it was given.
				if perr, ok = w.send(g.topic, ev.message()); !ok {
					return nil, false
				}
			}
			x.touched = true
			if perr == nil {
				x.done[re.ev] = true
				a.published++
				continue
			}
			if w.fail(ctx, x, re.ev, perr, a) && ev.key != "" {
				if blocked == nil {
					blocked = make(map[string]struct{})
				}
				blocked[ev.key] = struct{}{}
			}
		}
	}
	for e := range rows {
		w.settle(&rows[e], a)
	}
	return skipped, true
}

// fail records a failed attempt of event i of envelope x: the dead letters after
// MaxAttempts (the event is then done, and the attempts of its envelope start again),
// otherwise a retry after back-off. It reports whether the event waits for a retry.
func (w *worker) fail(ctx context.Context, x *outboxRow, i int, err error, a *ackBatch) (retry bool) {
	a.failures++
	msg := errorText(err)
	ev := &x.events[i]
	attempt := x.att + 1
	if int(attempt) >= w.cfg.MaxAttempts {
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
	w.log.LogAttrs(ctx, slog.LevelDebug, "events: relay failed to publish an event; it will be retried",
		slog.String("event_id", ev.id.String()), slog.String("topic", ev.topic), slog.String("key", ev.key),
		slog.Int("attempt", int(attempt)), slog.Duration("retry_in", w.retryDelay(int(attempt))), slog.Any("error", err))
	return true
}

// settle adds to a what the database must learn about envelope x after a publishing
// pass: nothing if none of its events was attempted; deletion when all are done;
// otherwise the new offset (or, when the done events are not a prefix, the events
// left), the keys left, and the back-off of a failure.
func (w *worker) settle(x *outboxRow, a *ackBatch) {
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
		delay = w.retryDelay(int(attempts)).Milliseconds()
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
func (w *worker) retryDelay(attempt int) time.Duration {
	d := w.cfg.RetryBackoff
	for i := 1; i < attempt && d < w.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxRetryBackoff)
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
