package events

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleEnvelope() []byte {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	a := encodeEvent(nil, uuid.MustParse("0190c2a4-0000-7000-8000-000000000001"), "orders", "k1", "Placed",
		[]byte(`{"n":1}`), map[string]string{"z": "1", "a": "2"}, at)
	b := encodeEvent(nil, uuid.MustParse("0190c2a4-0000-7000-8000-000000000002"), "audit", "", "", nil, nil, at.Add(-time.Hour))
	return appendEnvelope(nil, [][]byte{a, b})
}

func TestEnvelopeRoundTrip(t *testing.T) {
	b := sampleEnvelope()
	assert.Equal(t, envelopeFormat, b[0])
	evs, err := DecodeEnvelope(b)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, Event{
		ID: uuid.MustParse("0190c2a4-0000-7000-8000-000000000001"), Topic: "orders", Key: "k1", Type: "Placed",
		Payload: []byte(`{"n":1}`), Metadata: map[string]string{"z": "1", "a": "2"},
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC),
	}, evs[0])
	assert.Equal(t, "audit", evs[1].Topic)
	assert.Empty(t, evs[1].Payload)
	assert.Nil(t, evs[1].Metadata)
	assert.True(t, evs[1].OccurredAt.Equal(time.Date(2025, 1, 2, 2, 4, 5, 6000, time.UTC)))

	// The raw encodings of decoded events rebuild the envelope byte for byte.
	stored, err := decodeEnvelope(b)
	require.NoError(t, err)
	assert.Equal(t, b, appendEnvelope(nil, [][]byte{stored[0].raw, stored[1].raw}))
	// Metadata is written in name order: equal events encode equally.
	assert.Equal(t, []string{"a", "2", "z", "1"}, stored[0].metadata)
	assert.Equal(t, []string{"k1", ""}, keySet(stored))
}

func TestDecodeEnvelopeRejectsCorruptInput(t *testing.T) {
	good := sampleEnvelope()
	cases := map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{99}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"huge count":     binary.AppendUvarint([]byte{envelopeFormat}, 1<<40),
		"bad varint":     {envelopeFormat, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		_, err := DecodeEnvelope(b)
		assert.True(t, errors.Is(err, ErrCorruptEnvelope), "%s: %v", name, err)
	}
	// Every prefix of a valid envelope is rejected, never a panic.
	for i := range good {
		_, err := DecodeEnvelope(good[:i])
		assert.ErrorIs(t, err, ErrCorruptEnvelope, "prefix of %d bytes", i)
	}
}

func TestTextArrayLiteral(t *testing.T) {
	assert.Equal(t, `{"a","","b\"c","d\\e","{x,y}"}`, textArrayLiteral([]string{"a", "", `b"c`, `d\e`, "{x,y}"}))
	assert.Equal(t, `{}`, textArrayLiteral(nil))
}

func FuzzDecodeEnvelope(f *testing.F) {
	good := sampleEnvelope()
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{envelopeFormat, 0})
	f.Add(good[:len(good)/2])
	f.Add(append([]byte{2}, good[1:]...))
	f.Add(binary.AppendUvarint([]byte{envelopeFormat}, 1<<62))
	f.Fuzz(func(t *testing.T, b []byte) {
		stored, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptEnvelope) {
				t.Fatalf("error not wrapping ErrCorruptEnvelope: %v", err)
			}
			return
		}
		// A valid envelope re-encodes to the same bytes from its raw events.
		raws := make([][]byte, len(stored))
		for i := range stored {
			raws[i] = stored[i].raw
		}
		re := appendEnvelope(nil, raws)
		again, err := decodeEnvelope(re)
		if err != nil || len(again) != len(stored) {
			t.Fatalf("re-encoded envelope does not decode alike: %v", err)
		}
	})
}
