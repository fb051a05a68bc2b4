package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// An envelope is one uno_outbox row: the events one transaction emitted under one
// partition, in emission order, in the column events. Its binary layout, format 1:
//
//	byte     format (envelopeFormat)
//	uvarint  number of events
//	per event:
//	  [16]byte  ID
//	  uvarint length + bytes: topic, key, type, payload
//	  uvarint   number of metadata entries, then per entry uvarint length + bytes of
//	            the name, then of the value (names in ascending order)
//	  varint    OccurredAt in microseconds since the Unix epoch
//
// Format numbers are never reused: a relay that meets a format it does not know
// reports the envelope instead of guessing.
const envelopeFormat byte = 1

// minEncodedEvent is the smallest encoding of one event: its ID and one byte for each
// of the six length or count fields and the time.
const minEncodedEvent = 16 + 6

// ErrCorruptEnvelope is wrapped by the errors of [DecodeEnvelope]: the bytes are not
// an outbox envelope this version can read.
var ErrCorruptEnvelope = errors.New("events: corrupt outbox envelope")

// encodeEvent appends the encoding of one event to dst. The metadata names are
// written in ascending order, so that equal events encode equally.
func encodeEvent(dst []byte, id uuid.UUID, topic, key, typ string, payload []byte, md map[string]string, at time.Time) []byte {
	dst = append(dst, id[:]...)
	dst = appendString(dst, topic)
	dst = appendString(dst, key)
	dst = appendString(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	dst = append(dst, payload...)
	dst = binary.AppendUvarint(dst, uint64(len(md)))
	if len(md) > 0 {
		names := make([]string, 0, len(md))
		for k := range md {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			dst = appendString(dst, k)
			dst = appendString(dst, md[k])
		}
	}
	return binary.AppendVarint(dst, at.UnixMicro())
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendEnvelope appends an envelope holding the encoded events encs to dst.
func appendEnvelope(dst []byte, encs [][]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, e := range encs {
		n += len(e)
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, envelopeFormat)
	dst = binary.AppendUvarint(dst, uint64(len(encs)))
	for _, e := range encs {
		dst = append(dst, e...)
	}
	return dst
}

// storedEvent is an event decoded from an envelope. Its strings and payload alias
// the envelope's bytes; raw is its encoding, to write it into another envelope.
type storedEvent struct {
	id         uuid.UUID
	topic      string
	key        string
	typ        string
	payload    []byte
	metadata   []string // name, value, name, value...
	occurredAt time.Time
	raw        []byte
}

// decodeEnvelope decodes an envelope. It never panics: bytes that are not a valid
// envelope give an error wrapping ErrCorruptEnvelope.
func decodeEnvelope(b []byte) ([]storedEvent, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorruptEnvelope)
	}
	if b[0] != envelopeFormat {
		return nil, fmt.Errorf("%w: format %d, this version reads format %d; upgrade the relay", ErrCorruptEnvelope, b[0], envelopeFormat)
	}
	d := decoder{b: b, off: 1}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)-d.off)/minEncodedEvent {
		return nil, fmt.Errorf("%w: %d events cannot fit in %d bytes", ErrCorruptEnvelope, n, len(b))
	}
	evs := make([]storedEvent, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		start := d.off
		var ev storedEvent
		copy(ev.id[:], d.bytes(16))
		ev.topic = d.str()
		ev.key = d.str()
		ev.typ = d.str()
		ev.payload = d.lenBytes()
		m := d.uvarint()
		if d.err == nil && m > uint64(len(b)-d.off)/2 {
			d.fail("metadata count %d exceeds the envelope", m)
		}
		if d.err == nil && m > 0 {
			ev.metadata = make([]string, 0, 2*m)
			for j := uint64(0); j < m && d.err == nil; j++ {
				ev.metadata = append(ev.metadata, d.str(), d.str())
			}
		}
		us := d.varint()
		if d.err != nil {
			break
		}
		ev.occurredAt = time.UnixMicro(us).UTC()
		ev.raw = b[start:d.off:d.off]
		evs = append(evs, ev)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorruptEnvelope, len(b)-d.off)
	}
	return evs, nil
}

// decoder reads an envelope; the first error sticks and later reads return zero
// values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCorruptEnvelope, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad time")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("field of %d bytes past the end", n)
		return nil
	}
	out := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return out
}

func (d *decoder) lenBytes() []byte { return d.bytes(d.uvarint()) }

func (d *decoder) str() string { return string(d.lenBytes()) }

// event returns the Event that x encodes; its Payload is the stored []byte.
func (x *storedEvent) event() Event {
	ev := Event{ID: x.id, Topic: x.topic, Key: x.key, Type: x.typ, Payload: x.payload, OccurredAt: x.occurredAt}
	if len(x.metadata) > 0 {
		ev.Metadata = make(map[string]string, len(x.metadata)/2)
		for i := 0; i+1 < len(x.metadata); i += 2 {
			ev.Metadata[x.metadata[i]] = x.metadata[i+1]
		}
	}
	return ev
}

// DecodeEnvelope decodes the events column of an uno_outbox row: the events of one
// transaction under one partition, in emission order. Each Event's Payload is the
// stored []byte (as the relay publishes it). Bytes that are not a valid envelope give
// an error wrapping [ErrCorruptEnvelope]; it never panics.
func DecodeEnvelope(b []byte) ([]Event, error) {
	stored, err := decodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(stored))
	for i := range stored {
		out[i] = stored[i].event()
	}
	return out, nil
}
