package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Outbox is the transactional outbox of the events package (table uno_outbox): one row
// per event emitted by a committed transaction, waiting for a relay to publish it.
//
// Rows are written by events.Outbox in the COMMIT round trip of the transaction that
// emitted them, so an identity value is drawn when that transaction commits: for the
// events of one aggregate, whose transactions lock the same row and therefore commit one
// after the other, id order is commit order. The relay publishes the rows of a partition
// in id order and deletes a row once it is published; a row that keeps failing moves to
// uno_dead_letters. The events package reads and writes this table with SQL of its own
// (through pgx, for speed); its column names are part of that contract.
//
// Every column has a database default or is always written, so the schema declares no
// Go defaults (ent/runtime stays free of this table).
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
			Comment("Identity drawn when the emitting transaction commits; orders the rows of a partition."),
		field.UUID("event_id", uuid.UUID{}).
			Unique().
			Immutable().
			Comment("The event's ID; the Watermill message UUID."),
		field.Int16("partition").
			Immutable().
			Comment("FNV-1a hash of the key (of the event ID when the key is empty) modulo events.Partitions; a relay owns a partition through a lease."),
		field.Text("topic").
			Immutable().
			Comment("Topic the event is published to."),
		field.Text("key").
			Immutable().
			Comment("Ordering key (the aggregate ID); events of one key are published in id order. Empty: unordered."),
		field.Text("type").
			Immutable().
			Comment("Optional event type name."),
		field.Bytes("payload").
			Immutable().
			Comment("The marshaled payload, published as the message payload."),
		field.JSON("metadata", map[string]string{}).
			Immutable().
			Annotations(entsql.Default("{}")).
			Comment("The event's metadata, copied into the message metadata."),
		field.Time("occurred_at").
			Immutable().
			Comment("When the event occurred (set by the application)."),
		field.Time("created_at").
			Immutable().
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the emitting transaction started."),
		field.Int32("attempts").
			Annotations(entsql.DefaultExpr("0")).
			Comment("Failed publish attempts so far."),
		field.Time("next_attempt_at").
			Optional().
			Nillable().
			Comment("Set after a failed attempt: the row (and the later rows of its key) wait until then."),
		field.Text("last_error").
			Optional().
			Nillable().
			Comment("The error of the last failed attempt."),
	}
}

// Indexes of the outbox: the relay's claim query reads the rows of a partition in id
// order; the partial index finds the rows in retry back-off that hold their key's later
// rows back (it stays tiny: only failed rows are in it).
func (Outbox) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("partition", "id").
			StorageKey("uno_outbox_partition_id"),
		index.Fields("partition", "key", "id").
			StorageKey("uno_outbox_retrying").
			Annotations(entsql.IndexWhere("next_attempt_at IS NOT NULL")),
	}
}
