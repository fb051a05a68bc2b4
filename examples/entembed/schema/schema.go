package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"

	unoschema "github.com/uno-framework/uno/schema"
)

// Order is the application's own entity: an order for a quantity of an item.
type Order struct {
	ent.Schema
}

// Annotations places orders in the table "orders".
func (Order) Annotations() []entschema.Annotation {
	return []entschema.Annotation{entsql.Table("orders")}
}

// Fields of an order.
func (Order) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("item").NotEmpty(),
		field.Int("quantity").Positive(),
	}
}

// uno's tables, embedded: each type takes its fields, indexes and table name from
// uno's schema, so the application's ent migration creates and upgrades them too.
type (
	// UnoOutbox is uno's outbox (uno_outbox).
	UnoOutbox struct{ unoschema.Outbox }
	// UnoOutboxLease is uno's outbox partition leases (uno_outbox_leases).
	UnoOutboxLease struct{ unoschema.OutboxLease }
	// UnoOutboxRelay is uno's running relays (uno_outbox_relays).
	UnoOutboxRelay struct{ unoschema.OutboxRelay }
	// UnoInbox is uno's inbox (uno_inbox).
	UnoInbox struct{ unoschema.Inbox }
	// UnoDeadLetter is uno's dead letters (uno_dead_letters).
	UnoDeadLetter struct{ unoschema.DeadLetter }
)
