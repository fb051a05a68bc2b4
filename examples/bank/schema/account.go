package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
)

// Account is the reference domain's bank account: an owner and a balance in the
// smallest unit of the currency (cents), which never goes below zero. The generated
// code checks the balance when it is set; a CHECK constraint in the table also rejects
// a relative update (AddBalance) that would make it negative.
type Account struct {
	ent.Schema
}

// Annotations places accounts in the table "accounts" with its balance constraint.
func (Account) Annotations() []entschema.Annotation {
	return []entschema.Annotation{
		entsql.Table("accounts"),
		entsql.Checks(map[string]string{
			"accounts_balance_non_negative": "balance >= 0",
		}),
	}
}

// Fields of an account.
func (Account) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").
			Comment("Identity assigned by the database."),
		field.String("owner").
			NotEmpty().
			Comment("Name of the account holder."),
		field.Int64("balance").
			Default(0).
			Min(0).
			Comment("Balance in cents; never negative."),
		field.Time("created_at").
			Default(time.Now).
			Annotations(entsql.DefaultExpr("now()")).
			Immutable().
			Comment("When the account was opened."),
		field.Time("updated_at").
			Default(time.Now).
			UpdateDefault(time.Now).
			Annotations(entsql.DefaultExpr("now()")).
			Comment("When the account last changed."),
	}
}

// Edges of an account: the transfers it sent and received.
func (Account) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("sent", Transfer.Type).
			Comment("Transfers debited from this account."),
		edge.To("received", Transfer.Type).
			Comment("Transfers credited to this account."),
	}
}
