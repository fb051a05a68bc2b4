package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
)

// Transfer is the reference domain's movement of money from one account to another.
// It is immutable once written.
type Transfer struct {
	ent.Schema
}

// Annotations places transfers in the table "transfers" with its amount constraint.
func (Transfer) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("transfers"),
		entsql.Checks(map[string]string{
			"transfers_amount_positive": "amount > 0",
		}),
	}
}

// Fields of a transfer.
func (Transfer) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").
			Comment("Identity assigned by the database."),
		field.Int64("from_account_id").
			Immutable().
			Comment("The debited account."),
		field.Int64("to_account_id").
			Immutable().
			Comment("The credited account."),
		field.Int64("amount").
			Positive().
			Immutable().
			Comment("Amount in cents; always positive."),
		field.Time("created_at").
			Default(time.Now).
			Annotations(entsql.DefaultExpr("now()")).
			Immutable().
			Comment("When the transfer was made."),
	}
}

// Edges of a transfer: the two accounts it joins, both required.
func (Transfer) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("from", Account.Type).
			Ref("sent").
			Field("from_account_id").
			Unique().
			Required().
			Immutable().
			Comment("The debited account."),
		edge.From("to", Account.Type).
			Ref("received").
			Field("to_account_id").
			Unique().
			Required().
			Immutable().
			Comment("The credited account."),
	}
}
