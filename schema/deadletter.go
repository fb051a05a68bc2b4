package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// DeadLetter is an event the relay gave up on (table uno_dead_letters): publishing it
// failed events.RelayConfig.MaxAttempts times. The relay writes the event here and
// advances its outbox envelope past it in one transaction, and the envelope's later
// events and those of its key go on. An operator inspects the row and can put it back with events.Requeue.
type DeadLetter struct {
	ent.Schema
}

// Annotations names the table.
func (DeadLetter) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("uno_dead_letters"),
	}
}

// Fields of a dead letter: the event as it was stored, and why it failed.
func (DeadLetter) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").
			Comment("Identity of the dead letter."),
		field.Int64("outbox_id").
			Immutable().
			Comment("The id of the uno_outbox envelope that held the event."),
		field.UUID("event_id", uuid.UUID{}).
			Immutable().
			Comment("The event's ID (the Watermill message UUID)."),
		field.Int16("partition").
			Immutable().
			Comment("The partition of the envelope that held the event."),
		field.Text("topic").
			Immutable().
			Comment("Topic the event was to be published to."),
		field.Text("key").
			Immutable().
			Comment("Ordering key of the event."),
		field.Text("type").
			Immutable().
			Comment("Event type name."),
		field.Bytes("payload").
			Immutable().
			Comment("The marshaled payload."),
		field.JSON("metadata", map[string]string{}).
			Immutable().
			Annotations(entsql.Default("{}")).
			Comment("The event's metadata."),
		field.Time("occurred_at").
			Immutable().
			Comment("When the event occurred."),
		field.Time("created_at").
			Immutable().
			Comment("When the event entered the outbox."),
		field.Int32("attempts").
			Immutable().
			Comment("Failed publish attempts."),
		field.Text("last_error").
			Immutable().
			Comment("The error of the last attempt."),
		field.Time("failed_at").
			Immutable().
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the relay gave up."),
	}
}

// Indexes of the dead letters.
func (DeadLetter) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("event_id").
			StorageKey("uno_dead_letters_event_id"),
		index.Fields("topic", "failed_at").
			StorageKey("uno_dead_letters_topic_failed_at"),
	}
}
