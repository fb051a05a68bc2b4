package pgarray_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/schema/pgarray"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestTextRoundTrip writes arrays through database/sql on pgx and reads them back:
// elements with quotes, commas, braces, backslashes, spaces and the word NULL survive;
// an empty array stays empty and a nil one is NULL.
func TestTextRoundTrip(t *testing.T) {
	db := stdlib.OpenDBFromPool(pgtest.Pool(t))
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	for _, in := range []pgarray.Text{
		{"a", "b"},
		{`"quoted"`, `a,b`, `{brace}`, `back\slash`, ` padded `, "NULL", ""},
		{},
		nil,
	} {
		var out pgarray.Text
		var isNull sql.NullBool
		require.NoError(t, db.QueryRowContext(ctx, `SELECT $1::text[], $1::text[] IS NULL`, in).Scan(&out, &isNull))
		assert.Equal(t, in == nil, isNull.Bool, "NULL exactly for nil: %q", in)
		if in == nil {
			assert.Nil(t, out)
			continue
		}
		assert.Equal(t, []string(in), []string(out))
	}
}

func TestTextScanRejectsOtherTypes(t *testing.T) {
	var a pgarray.Text
	err := a.Scan(42)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "int")
}
