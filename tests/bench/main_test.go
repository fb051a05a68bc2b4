package bench

import (
	"testing"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) {
	runRelayProcessIfAsked()
	pgtest.Main(m)
}
