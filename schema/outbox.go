package schema

import (
	"errors"

	atlasschema "ariga.io/atlas/sql/schema"
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	entmigrateschema "entgo.io/ent/dialect/sql/schema"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/uno-framework/uno/schema/pgarray"
)

// Outbox is the transactional outbox of the events package (table uno_outbox): one row,
// an envelope, per committed transaction and partition, holding the events that
// transaction emitted under that partition, in emission order, waiting for a relay to
// publish them. A transaction whose events share one key (one aggregate) writes one row.
//
// Rows are written by events.Outbox in the COMMIT round trip of the transaction that
// emitted them, so an identity value is drawn when that transaction commits: for the
// events of one aggregate, whose transactions lock the same row and therefore commit one
// after the other, id order is commit order. The relay publishes the envelopes of a
// partition in id order, their events in order from the offset delivered, and deletes
// an envelope once all its events are published; an event that keeps failing moves to
// uno_dead_letters. The events package reads and writes this table with SQL of its own
// (through pgx, for speed), and the column events in a binary format of its own
// (events.DecodeEnvelope reads it); the column names are part of that contract.
//
// The primary key is (partition, id), the order the relay reads in, and the only index
// a new row costs: ent declares id alone, and [DiffHook] makes the key composite. Every column has a database default or is always written, so the
// schema declares no Go defaults (ent/runtime stays free of this table).
type Outbox struct {
	ent.Schema
}

// Annotations names the table.
func (Outbox) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("uno_outbox"),
	}
}

// Fields of an outbox row.
func (Outbox) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").
			Comment("Identity drawn when the emitting transaction commits; orders the envelopes of a partition."),
		field.Int16("partition").
			Immutable().
			Comment("FNV-1a hash of the events' key modulo events.Partitions (events without key join the envelope of their transaction's first event); a relay owns a partition through a lease."),
		field.Bytes("events").
			Comment("The envelope: the events, in emission order, in the events package's versioned binary format (events.DecodeEnvelope)."),
		field.Other("keys", pgarray.Text{}).
			SchemaType(map[string]string{dialect.Postgres: "text[]"}).
			Comment("The distinct keys of the events still to publish (\"\" for events without key): while the envelope waits for a retry, later envelopes' events of these keys wait too."),
		field.Int32("count").
			Comment("Number of events in the envelope."),
		field.Int32("delivered").
			Annotations(entsql.DefaultExpr("0")).
			Comment("Number of the envelope's first events already published (or dead-lettered)."),
		field.Time("created_at").
			Immutable().
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the emitting transaction started."),
		field.Int32("attempts").
			Annotations(entsql.DefaultExpr("0")).
			Comment("Failed publish attempts of the envelope's first undelivered event(s) so far."),
		field.Time("next_attempt_at").
			Optional().
			Nillable().
			Comment("Set after a failed attempt: the envelope (and the later events of its keys) wait until then."),
		field.Text("last_error").
			Optional().
			Nillable().
			Comment("The error of the last failed attempt."),
	}
}

// Indexes of the outbox: besides the primary key (partition, id), the partial index
// finds the envelopes in retry back-off that hold later events of their keys back; it
// stays tiny (only failed envelopes are in it) and costs nothing when a row is written.
func (Outbox) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("partition", "id").
			StorageKey("uno_outbox_retrying").
			Annotations(entsql.IndexWhere("next_attempt_at IS NOT NULL")),
	}
}

// DiffHook is the ent migration diff hook uno's tables need: it makes the primary key
// of uno_outbox (partition, id) instead of the id that ent declares (ent has no
// composite primary keys for plain schemas, and one index per written envelope is what
// keeps emitting cheap). [Migrate] installs it; an application whose own ent schema
// embeds uno's schema types passes it to its own ent migration (see the package
// documentation). It refuses to upgrade an uno_outbox of the earlier one-row-per-event
// layout (it has a column event_id): drain it with that version's relay, then drop the
// table.
func DiffHook(next entmigrateschema.Differ) entmigrateschema.Differ {
	return entmigrateschema.DiffFunc(func(current, desired *atlasschema.Schema) ([]atlasschema.Change, error) {
		if t, ok := current.Table("uno_outbox"); ok {
			if _, old := t.Column("event_id"); old {
				return nil, errors.New("schema: uno_outbox has the layout of an earlier version (one row per event); " +
					"let that version's relay drain it, drop the table, and migrate again")
			}
		}
		if t, ok := desired.Table("uno_outbox"); ok {
			p, okP := t.Column("partition")
			id, okID := t.Column("id")
			if okP && okID {
				t.SetPrimaryKey(atlasschema.NewPrimaryKey(p, id))
			}
		}
		return next.Diff(current, desired)
	})
}
