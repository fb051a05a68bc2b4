package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/uno-framework/uno/txmanager"
)

// Requeue puts the dead letters with the given ids (uno_dead_letters.id) back into
// the outbox, to be published again from their first attempt, and returns how many it
// moved. Run it through a pool, or inside a transaction to combine it with other work.
// A requeued event goes after the events of its key written since; its ID is kept, so
// an [Inbox] still recognises it.
func Requeue(ctx context.Context, q txmanager.Querier, ids ...int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rows, err := q.Query(ctx, requeueReadSQL, ids)
	if err != nil {
		return 0, fmt.Errorf("events: read %d dead letter(s) to requeue: %w", len(ids), err)
	}
	var found []int64
	var bodies [][]byte
	for rows.Next() {
		var (
			id                   int64
			eventID              uuid.UUID
			topic, key, typ, mdj string
			payload              []byte
			at                   time.Time
		)
		if err := rows.Scan(&id, &eventID, &topic, &key, &typ, &payload, &mdj, &at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("events: read %d dead letter(s) to requeue: %w", len(ids), err)
		}
		var md map[string]string
		if err := json.Unmarshal([]byte(mdj), &md); err != nil {
			rows.Close()
			return 0, fmt.Errorf("events: dead letter %d has metadata that is not a JSON object of strings; fix it before requeueing: %w", id, err)
		}
		enc := encodeEvent(nil, eventID, topic, key, typ, payload, md, at)
		found = append(found, id)
		bodies = append(bodies, appendEnvelope(nil, [][]byte{enc}))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("events: read %d dead letter(s) to requeue: %w", len(ids), err)
	}
	if len(found) == 0 {
		return 0, nil
	}
	var n int64
	var notified any
	if err := q.QueryRow(ctx, requeueSQL, found, bodies).Scan(&n, &notified); err != nil {
		return 0, fmt.Errorf("events: requeue %d dead letter(s): %w", len(found), err)
	}
	return n, nil
}

// DeadLetter is an event the relay gave up on, as [ReadDeadLetters] and
// [ReadDeadLetter] return it (a row of uno_dead_letters).
type DeadLetter struct {
	// ID identifies the dead letter (uno_dead_letters.id): give it to [Requeue].
	ID int64
	// Event is the event; its Payload is the stored []byte.
	Event Event
	// OutboxID and Partition identify the outbox envelope that held the event.
	OutboxID  int64
	Partition int16
	// CreatedAt is when the event entered the outbox.
	CreatedAt time.Time
	// Attempts is the number of failed publish attempts; LastError the last one's error.
	Attempts  int32
	LastError string
	// FailedAt is when the relay gave up.
	FailedAt time.Time
}

// ReadDeadLetters returns the dead letters whose id is greater than after, oldest
// first, at most limit of them (all when limit is 0 or less). Page with after set to
// the last ID read. q is a pool or a transaction.
func ReadDeadLetters(ctx context.Context, q txmanager.Querier, after int64, limit int) ([]DeadLetter, error) {
	n := int64(limit)
	if limit <= 0 {
		n = math.MaxInt64
	}
	rows, err := q.Query(ctx, deadLettersSQL, after, n)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, errNotMigrated(err)
		}
		return nil, fmt.Errorf("events: read the dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: read the dead letters: %w", err)
	}
	return out, nil
}

// ReadDeadLetter returns the dead letter id, or an error wrapping
// [ErrDeadLetterNotFound].
func ReadDeadLetter(ctx context.Context, q txmanager.Querier, id int64) (DeadLetter, error) {
	d, err := scanDeadLetter(q.QueryRow(ctx, deadLetterSQL, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return DeadLetter{}, fmt.Errorf("%w: id %d", ErrDeadLetterNotFound, id)
	case err != nil && isUndefinedTable(err):
		return DeadLetter{}, errNotMigrated(err)
	}
	return d, err
}

// scanDeadLetter reads a row of deadLettersSQL or deadLetterSQL.
func scanDeadLetter(row pgx.Row) (DeadLetter, error) {
	var (
		d       DeadLetter
		payload []byte
		mdj     string
	)
	err := row.Scan(&d.ID, &d.OutboxID, &d.Event.ID, &d.Partition, &d.Event.Topic, &d.Event.Key, &d.Event.Type,
		&payload, &mdj, &d.Event.OccurredAt, &d.CreatedAt, &d.Attempts, &d.LastError, &d.FailedAt)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
			return DeadLetter{}, err
		}
		return DeadLetter{}, fmt.Errorf("events: read a dead letter: %w", err)
	}
	d.Event.Payload = payload
	if err := json.Unmarshal([]byte(mdj), &d.Event.Metadata); err != nil {
		return DeadLetter{}, fmt.Errorf("events: dead letter %d has metadata that is not a JSON object of strings: %w", d.ID, err)
	}
	if len(d.Event.Metadata) == 0 {
		d.Event.Metadata = nil
	}
	return d, nil
}

// PurgeDeadLetters deletes the dead letters that failed more than olderThan ago and
// returns how many. q is a pool or a transaction.
func PurgeDeadLetters(ctx context.Context, q txmanager.Querier, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("events: purge dead letters older than %s: the age must not be negative", olderThan)
	}
	tag, err := q.Exec(ctx, purgeDeadLettersSQL, olderThan.Milliseconds())
	if err != nil {
		if isUndefinedTable(err) {
			return 0, errNotMigrated(err)
		}
		return 0, fmt.Errorf("events: purge the dead letters: %w", err)
	}
	return tag.RowsAffected(), nil
}
