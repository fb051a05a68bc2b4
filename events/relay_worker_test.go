package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	w := &worker{cfg: &RelayConfig{RetryBackoff: time.Second, MaxRetryBackoff: 5 * time.Second}}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, w.retryDelay(a))
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
}

func TestErrorTextIsStorable(t *testing.T) {
	s := errorText(errors.New("bad\x00byte \xff" + strings.Repeat("y", 5000)))
	assert.NotContains(t, s, "\x00")
	assert.True(t, len(s) <= 4000)
	assert.True(t, strings.HasPrefix(s, "bad?byte ?"))
}
