package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Inbox records the messages a consumer has handled (table uno_inbox). The
// events.Inbox middleware inserts (consumer, message_id) in the same transaction as the
// handler's own writes; a redelivered message finds its row and the handler is skipped.
// events.PruneInbox deletes rows older than a retention period.
type Inbox struct {
	ent.Schema
}

// Annotations names the table.
func (Inbox) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("uno_inbox"),
	}
}

// Fields of an inbox row.
func (Inbox) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").
			Comment("Identity of the row."),
		field.Text("consumer").
			Immutable().
			Comment("The consumer that handled the message (by default the router's handler name)."),
		field.Text("message_id").
			Immutable().
			Comment("The Watermill message UUID (the event ID for events from the outbox)."),
		field.Time("processed_at").
			Immutable().
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the handling transaction started."),
	}
}

// Indexes of the inbox: one row per (consumer, message); pruning by age.
func (Inbox) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("consumer", "message_id").
			Unique().
			StorageKey("uno_inbox_consumer_message_id"),
		index.Fields("processed_at").
			StorageKey("uno_inbox_processed_at"),
	}
}
