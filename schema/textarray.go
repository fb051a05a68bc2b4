package schema

import (
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// TextArray is the Go type of a PostgreSQL text[] column in uno's ent schemas (the keys
// of an outbox envelope). It converts through pgx's own array codec, so the library
// needs no other PostgreSQL driver. A nil TextArray is stored as NULL.
type TextArray []string

// Value encodes the array in PostgreSQL's text format.
func (a TextArray) Value() (driver.Value, error) {
	if a == nil {
		return nil, nil
	}
	buf, err := pgtype.NewMap().Encode(pgtype.TextArrayOID, pgtype.TextFormatCode, []string(a), nil)
	if err != nil {
		return nil, fmt.Errorf("schema: encode text[]: %w", err)
	}
	return string(buf), nil
}

// Scan decodes a text[] value given as text (string or []byte) or as a []string; NULL
// gives a nil TextArray.
func (a *TextArray) Scan(src any) error {
	var text []byte
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case []string:
		*a = append(TextArray(nil), v...)
		return nil
	case string:
		text = []byte(v)
	case []byte:
		text = v
	default:
		return fmt.Errorf("schema: scan text[]: got %T, want a string, []byte or []string", src)
	}
	var out []string
	if err := pgtype.NewMap().Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, text, &out); err != nil {
		return fmt.Errorf("schema: scan text[]: %w", err)
	}
	*a = out
	return nil
}
