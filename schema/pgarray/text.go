package pgarray

import (
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// Text is the Go type of a PostgreSQL text[] column (the keys of an outbox envelope in
// uno's ent schema). It converts through pgx's own array codec, so no other PostgreSQL
// driver is needed. A nil Text is stored as NULL.
type Text []string

// Value encodes the array in PostgreSQL's text format.
func (a Text) Value() (driver.Value, error) {
	if a == nil {
		return nil, nil
	}
	buf, err := pgtype.NewMap().Encode(pgtype.TextArrayOID, pgtype.TextFormatCode, []string(a), nil)
	if err != nil {
		return nil, fmt.Errorf("pgarray: encode text[]: %w", err)
	}
	return string(buf), nil
}

// Scan decodes a text[] value given as text (string or []byte) or as a []string; NULL
// gives a nil Text.
func (a *Text) Scan(src any) error {
	var text []byte
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case []string:
		*a = append(Text(nil), v...)
		return nil
	case string:
		text = []byte(v)
	case []byte:
		text = v
	default:
		return fmt.Errorf("pgarray: scan text[]: got %T, want a string, []byte or []string", src)
	}
	var out []string
	if err := pgtype.NewMap().Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, text, &out); err != nil {
		return fmt.Errorf("pgarray: scan text[]: %w", err)
	}
	*a = out
	return nil
}
