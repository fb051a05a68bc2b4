package sqlcexample_test

import (
	"testing"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
