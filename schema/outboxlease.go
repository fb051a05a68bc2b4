package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
)

// OutboxLease is one partition of the outbox and the relay that holds it (table
// uno_outbox_leases, one row per partition, created by the first relay that starts).
// A relay publishes the rows of a partition only while it holds the lease: owner is
// its ID and expires_at (set from the database clock) is in the future. It renews its
// leases well before they expire, gives them back when it stops or when the work is
// shared with more relays, and takes over a lease that expired (its holder died).
type OutboxLease struct {
	ent.Schema
}

// Annotations names the table.
func (OutboxLease) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("uno_outbox_leases"),
	}
}

// Fields of a lease.
func (OutboxLease) Fields() []ent.Field {
	return []ent.Field{
		field.Int16("id").
			StorageKey("partition").
			Annotations(entsql.Annotation{Incremental: new(false)}).
			Comment("The partition number, 0 to events.Partitions-1."),
		field.Text("owner").
			Optional().
			Nillable().
			Comment("ID of the relay holding the lease; NULL when free."),
		field.Time("expires_at").
			Annotations(entsql.DefaultExpr("now()")).
			Comment("The lease is held until then (database clock)."),
	}
}

// OutboxRelay is a running relay (table uno_outbox_relays): each relay keeps its row
// alive while it runs, so that relays know how many share the partitions; a row whose
// expires_at passed belongs to a relay that died and is removed.
type OutboxRelay struct {
	ent.Schema
}

// Annotations names the table.
func (OutboxRelay) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("uno_outbox_relays"),
	}
}

// Fields of a relay.
func (OutboxRelay) Fields() []ent.Field {
	return []ent.Field{
		field.Text("id").
			Comment("The relay's ID (host, process and a random part)."),
		field.Time("started_at").
			Immutable().
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the relay started."),
		field.Time("expires_at").
			Comment("The relay counts as alive until then (database clock)."),
	}
}
