package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

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
