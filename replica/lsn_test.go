package replica

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, l.String())
	}
	l, _ := ParseLSN("1/10")
	assert.Equal(t, LSN(1<<32|0x10), l)
	for _, bad := range []string{"", "16", "x/1", "1/", "100000000/0"} {
		_, err := ParseLSN(bad)
		assert.Error(t, err, bad)
	}
}

func TestReplayTargetStepsBackOverAPageHeader(t *testing.T) {
	const seg = 16 << 20
	assert.Equal(t, LSN(8192), replayTarget(8192+24, seg), "just past a short page header: the log ended at the page boundary")
	assert.Equal(t, LSN(seg), replayTarget(seg+40, seg), "just past a segment's long page header")
	assert.Equal(t, LSN(8192+40), replayTarget(8192+40, seg), "40 bytes into a page that is no segment's first is a record's end")
	assert.Equal(t, LSN(8192+100), replayTarget(8192+100, seg))
	assert.Equal(t, LSN(seg+40), replayTarget(seg+40, 0), "an unknown segment size never steps back over 40 bytes")
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, Config{}.Validate())
	err := Config{MaxLag: -1, WaitTimeout: -1}.Validate()
	assert.ErrorContains(t, err, "max_lag")
	assert.ErrorContains(t, err, "wait_timeout")
	assert.ErrorContains(t, Config{MaxLag: 100_000_000, CheckInterval: 60_000_000}.Validate(), "check_interval")
}

func TestSessionToken(t *testing.T) {
	s := NewSession()
	assert.Equal(t, "", s.Token())
	s.advance(0x1_0000_0010)
	s.advance(0x10) // positions only grow
	r, err := ResumeSession(s.Token())
	require.NoError(t, err)
	pos, primaryOnly := r.Position()
	assert.Equal(t, LSN(0x1_0000_0010), pos)
	assert.False(t, primaryOnly)
	s.requirePrimary()
	r, err = ResumeSession(s.Token())
	require.NoError(t, err)
	_, primaryOnly = r.Position()
	assert.True(t, primaryOnly)
	_, err = ResumeSession("nonsense")
	assert.Error(t, err)
}
