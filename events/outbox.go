package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/uno-framework/uno/txmanager"
)

// NotifyChannel is the PostgreSQL NOTIFY channel the outbox signals on when a
// transaction that wrote events commits; relays LISTEN on it. The payload lists the
// partitions written, comma-separated.
const NotifyChannel = "uno_outbox"

// OutboxConfig configures an [Outbox]. The zero value is ready to use.
type OutboxConfig struct {
	// Marshaler encodes payloads that are not []byte. Default: [JSONMarshaler].
	Marshaler Marshaler
	// ContextMetadata, when set, adds entries to the metadata of every event emitted,
	// taken from the emitting context: md is a copy of the event's own metadata, which
	// entries already there win over. It is how the trace context of the use-case
	// travels with its events to their handlers (package telemetry's InjectMetadata);
	// nil adds nothing.
	ContextMetadata func(ctx context.Context, md map[string]string)
}

func (c *OutboxConfig) setDefaults() {
	if c.Marshaler == nil {
		c.Marshaler = JSONMarshaler{}
	}
}

// Outbox is the writer of the transactional outbox: [Outbox.Emit] stages events on the
// transaction the context carries, and when the outermost transaction commits the
// transaction manager asks the Outbox ([Outbox.QueueCommit]) to write them — all in one
// INSERT, sent in the round trip that carries COMMIT, followed after COMMIT by the
// NOTIFY that wakes the relays ([Outbox.QueueAfterCommit]). So an event is in the
// outbox if and only if its transaction committed, and no relay can see it earlier. Events staged in a scope rolled back to its savepoint are
// dropped; a failed attempt that the manager retries discards its events.
//
// An Outbox holds no connection and is safe for concurrent use; an application needs
// one.
type Outbox struct {
	marshaler Marshaler
	ctxMeta   func(ctx context.Context, md map[string]string)
}

var _ txmanager.AfterCommitQueuer = (*Outbox)(nil)

// NewOutbox returns an Outbox configured by cfg.
func NewOutbox(cfg OutboxConfig) *Outbox {
	cfg.setDefaults()
	return &Outbox{marshaler: cfg.Marshaler, ctxMeta: cfg.ContextMetadata}
}

// record is an event encoded for the outbox: what Emit stages.
type record struct {
	id        uuid.UUID
	key       string
	partition int16  // PartitionOf(key, id)
	enc       []byte // encodeEvent's bytes
}

// Emit stages events on the transaction ctx carries: they are written to the outbox
// when the outermost transaction commits, and dropped if the scope they were emitted in
// rolls back. It encodes the payloads now, so an event that cannot be encoded is
// reported here ([MarshalError], nothing staged) rather than at commit. An event
// without ID or OccurredAt gets them here.
//
// Outside a transaction Emit returns an error wrapping [txmanager.ErrNoTransaction]:
// call it inside txmanager.Manager.Do (or uow's Do).
func (o *Outbox) Emit(ctx context.Context, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	if !txmanager.InTransaction(ctx) {
		return fmt.Errorf("events: emit %d event(s) outside a transaction: call Emit inside txmanager.Manager.Do: %w",
			len(evs), txmanager.ErrNoTransaction)
	}
	items := make([]any, 0, len(evs))
	for i := range evs {
		rec, err := o.encode(ctx, evs[i])
		if err != nil {
			return err
		}
		items = append(items, rec)
	}
	if err := txmanager.Stage(ctx, o, items...); err != nil {
		return fmt.Errorf("events: stage %d event(s) on the transaction: %w", len(evs), err)
	}
	return nil
}

// encode validates ev, fills its ID and OccurredAt when unset, adds the metadata of
// ctx (ContextMetadata), and encodes it. The caller's event is not modified.
func (o *Outbox) encode(ctx context.Context, ev Event) (*record, error) {
	if o.ctxMeta != nil {
		md := make(map[string]string, len(ev.Metadata)+2)
		o.ctxMeta(ctx, md)
		maps.Copy(md, ev.Metadata)
		ev.Metadata = md
	}
	if ev.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("events: draw an ID for an event of topic %q: %w", ev.Topic, err)
		}
		ev.ID = id
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now()
	}
	if err := ev.validate(); err != nil {
		return nil, err
	}
	var payload []byte
	switch p := ev.Payload.(type) {
	case []byte:
		payload = p
	default:
		b, err := o.marshaler.Marshal(p)
		if err != nil {
			return nil, &MarshalError{Topic: ev.Topic, ID: ev.ID, Err: err}
		}
		payload = b
	}
	at := ev.OccurredAt.Truncate(time.Microsecond)
	return &record{
		id:        ev.ID,
		key:       ev.Key,
		partition: PartitionOf(ev.Key, ev.ID),
		enc:       encodeEvent(nil, ev.ID, ev.Topic, ev.Key, ev.Type, payload, ev.Metadata, at),
	}, nil
}

// QueueCommit implements [txmanager.CommitWriter]: it queues, into the batch that
// carries COMMIT, one statement that INSERTs the events staged by [Outbox.Emit] that
// survived their scopes. The transaction manager calls it; an application does not.
func (o *Outbox) QueueCommit(_ context.Context, b *pgx.Batch, items []any) error {
	recs, err := records(items)
	if err != nil || len(recs) == 0 {
		return err
	}
	queueInsert(b, recs)
	return nil
}

// QueueAfterCommit implements [txmanager.AfterCommitQueuer]: it queues, after COMMIT in
// the same round trip, the NOTIFY that wakes the relays of the partitions the committed
// events went to. It runs outside the transaction, so that concurrent writers do not
// commit one at a time (see notifyAfterCommitSQL); when it is lost, the relays find the
// events at their next poll.
func (o *Outbox) QueueAfterCommit(_ context.Context, b *pgx.Batch, items []any) error {
	recs, err := records(items)
	if err != nil || len(recs) == 0 {
		return err
	}
	b.Queue(notifyAfterCommitSQL, partitionsOf(recs))
	return nil
}

// records returns the staged items as the records Outbox.Emit staged.
func records(items []any) ([]*record, error) {
	recs := make([]*record, 0, len(items))
	for _, it := range items {
		rec, ok := it.(*record)
		if !ok {
			return nil, fmt.Errorf("events: the outbox was given a staged %T, not an event staged by Outbox.Emit", it)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// Write writes events to the outbox at once through q, for code that runs its own pgx
// transaction rather than txmanager's: pass the pgx.Tx, and the events become visible
// when that transaction commits. Called outside a transaction, the events are
// committed by this call. The payloads are encoded as by [Outbox.Emit]. The NOTIFY
// that wakes the relays is part of q's transaction, so concurrent transactions that
// Write commit one at a time; prefer Emit under txmanager where that matters.
func (o *Outbox) Write(ctx context.Context, q txmanager.Querier, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	recs := make([]*record, 0, len(evs))
	for i := range evs {
		rec, err := o.encode(ctx, evs[i])
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	b := &pgx.Batch{}
	queueInsert(b, recs)
	b.Queue(notifySQL, partitionsOf(recs))
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("events: write %d event(s) to the outbox: %w", len(recs), err)
	}
	return nil
}

// envelopePartition returns the partition r is written to: its key's, or, for an event
// without key, which has no order to keep, the partition of the transaction's first
// event (home), so that a transaction's events take as few rows as their keys allow.
func envelopePartition(r *record, home int16) int16 {
	if r.key == "" {
		return home
	}
	return r.partition
}

// queueInsert queues the statement that writes recs (in emission order) as envelopes,
// one per partition (see envelopePartition).
func queueInsert(b *pgx.Batch, recs []*record) {
	home := recs[0].partition
	type env struct {
		partition int16
		encs      [][]byte
		keys      []string
	}
	envs := make([]env, 0, 1)
	at := func(p int16) *env {
		for i := range envs {
			if envs[i].partition == p {
				return &envs[i]
			}
		}
		envs = append(envs, env{partition: p})
		return &envs[len(envs)-1]
	}
	for _, r := range recs {
		e := at(envelopePartition(r, home))
		e.encs = append(e.encs, r.enc)
		if !slices.Contains(e.keys, r.key) {
			e.keys = append(e.keys, r.key)
		}
	}
	parts := make([]int16, len(envs))
	bodies := make([][]byte, len(envs))
	keys := make([]string, len(envs))
	counts := make([]int32, len(envs))
	for i := range envs {
		parts[i] = envs[i].partition
		bodies[i] = appendEnvelope(nil, envs[i].encs)
		keys[i] = textArrayLiteral(envs[i].keys)
		counts[i] = int32(len(envs[i].encs))
	}
	b.Queue(insertSQL, parts, bodies, keys, counts)
}

// partitionsOf returns the notification payload naming the partitions recs are
// written to.
func partitionsOf(recs []*record) string {
	var seen [Partitions]bool
	home := recs[0].partition
	for _, r := range recs {
		seen[envelopePartition(r, home)] = true
	}
	return notifyPayload(&seen)
}

// notifyPayload lists the partitions marked in seen: "3,17,30".
func notifyPayload(seen *[Partitions]bool) string {
	var sb strings.Builder
	for p, ok := range seen {
		if !ok {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(p))
	}
	return sb.String()
}

// parseNotifyPayload returns the partitions a notification names; ok is false when
// the payload is not a list of partitions (then every partition may have rows).
func parseNotifyPayload(s string, fn func(p int)) (ok bool) {
	if s == "" {
		return false
	}
	for part := range strings.SplitSeq(s, ",") {
		p, err := strconv.Atoi(part)
		if err != nil || p < 0 || p >= Partitions {
			return false
		}
		fn(p)
	}
	return true
}

// errNotMigrated wraps a failure caused by a missing outbox table.
func errNotMigrated(err error) error {
	return fmt.Errorf("%w: %w", ErrNotMigrated, err)
}

// isUndefinedTable reports whether err is PostgreSQL's undefined_table (42P01).
func isUndefinedTable(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "42P01"
}

// keySet returns the distinct keys of evs in first-appearance order; "" stands for
// the events without key.
func keySet(evs []storedEvent) []string {
	var keys []string
	for i := range evs {
		if !slices.Contains(keys, evs[i].key) {
			keys = append(keys, evs[i].key)
		}
	}
	return keys
}

// textArrayLiteral formats keys as a PostgreSQL text[] literal, every element quoted.
func textArrayLiteral(keys []string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('"')
		for j := 0; j < len(k); j++ {
			if c := k[j]; c == '"' || c == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteByte(k[j])
		}
		sb.WriteByte('"')
	}
	sb.WriteByte('}')
	return sb.String()
}
