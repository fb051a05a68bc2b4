package uowtest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uno-framework/uno/events"
)

// Emitted returns the events emitted so far in the transaction of ctx (a context from
// [Begin], or one derived from it inside a use-case), in emission order: those of the
// use-cases that succeeded, not those of the ones that rolled back. Each Payload is the
// encoded []byte; [Payload] decodes it.
func Emitted(tb testing.TB, ctx context.Context) []events.Event {
	tb.Helper()
	evs, err := unitsFrom(tb, ctx).Outbox().Staged(ctx)
	if err != nil {
		tb.Fatalf("uowtest: read the emitted events: %v", err)
	}
	return evs
}

// Match selects events. An empty field matches anything.
type Match struct {
	// Topic is the event's topic.
	Topic string
	// Key is the event's ordering key.
	Key string
	// Type is the event's type name.
	Type string
	// Payload is the expected payload. A []byte is compared with the encoded payload
	// byte for byte; any other value with the payload decoded into a new value of its
	// type by the outbox's Marshaler (JSON by default), with reflect.DeepEqual. So pass
	// the value the use-case emits (AccountOpened{ID: 1, Owner: "alice"}), not a
	// pointer to it unless it emits a pointer.
	Payload any
}

// String describes the match, for failure messages.
func (m Match) String() string {
	var parts []string
	for _, f := range [...]struct{ name, v string }{{"topic", m.Topic}, {"key", m.Key}, {"type", m.Type}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", f.name, f.v))
		}
	}
	if m.Payload != nil {
		parts = append(parts, fmt.Sprintf("payload=%+v", m.Payload))
	}
	if len(parts) == 0 {
		return "any event"
	}
	return strings.Join(parts, " ")
}

// matches reports whether ev matches m, decoding payloads with u.
func (m Match) matches(ev events.Event, u events.Marshaler) bool {
	if (m.Topic != "" && ev.Topic != m.Topic) || (m.Key != "" && ev.Key != m.Key) || (m.Type != "" && ev.Type != m.Type) {
		return false
	}
	if m.Payload == nil {
		return true
	}
	raw, _ := ev.Payload.([]byte)
	if want, ok := m.Payload.([]byte); ok {
		return bytes.Equal(raw, want)
	}
	got := reflect.New(reflect.TypeOf(m.Payload))
	if err := u.Unmarshal(raw, got.Interface()); err != nil {
		return false
	}
	return reflect.DeepEqual(got.Elem().Interface(), m.Payload)
}

// RequireEmitted fails the test at once unless an event matching m was emitted in the
// transaction of ctx (see [Emitted]), and returns the first one that does. The failure
// message lists the events that were emitted.
func RequireEmitted(tb testing.TB, ctx context.Context, m Match) events.Event {
	tb.Helper()
	units := unitsFrom(tb, ctx)
	evs := Emitted(tb, ctx)
	for _, ev := range evs {
		if m.matches(ev, units.Outbox().Marshaler()) {
			return ev
		}
	}
	tb.Fatalf("uowtest: no emitted event matches %s; emitted:%s", m, describe(evs))
	return events.Event{}
}

// RequireNotEmitted fails the test at once if an event matching m was emitted in the
// transaction of ctx.
func RequireNotEmitted(tb testing.TB, ctx context.Context, m Match) {
	tb.Helper()
	units := unitsFrom(tb, ctx)
	evs := Emitted(tb, ctx)
	for _, ev := range evs {
		if m.matches(ev, units.Outbox().Marshaler()) {
			tb.Fatalf("uowtest: an emitted event matches %s, want none; emitted:%s", m, describe(evs))
		}
	}
}

// Payload decodes the payload of ev, an event of [Emitted] or [RequireEmitted], into a
// T with the outbox's Marshaler, and fails the test at once if it cannot.
func Payload[T any](tb testing.TB, ctx context.Context, ev events.Event) T {
	tb.Helper()
	var v T
	raw, ok := ev.Payload.([]byte)
	if !ok {
		tb.Fatalf("uowtest: event %s (topic %q) has a %T payload, want the encoded []byte of an emitted event", ev.ID, ev.Topic, ev.Payload)
		return v
	}
	if err := unitsFrom(tb, ctx).Outbox().Marshaler().Unmarshal(raw, &v); err != nil {
		tb.Fatalf("uowtest: decode the payload of event %s (topic %q) into %T: %v", ev.ID, ev.Topic, v, err)
	}
	return v
}

// Deliver hands the events emitted in the transaction of ctx whose topic is one of
// topics (every event when topics is empty) to h, one after the other in emission
// order, in the caller's goroutine, each as the Watermill message the relay would
// publish (events.NewMessage) with ctx as its context: what h writes through that
// context joins the test's transaction, as a savepoint scope of its own when h runs a
// Do. It returns the number of events delivered and stops at the first error of h,
// which it returns wrapped with the event's ID and topic. Messages h returns are
// dropped. Events h emits are not delivered by this call; call Deliver again to
// deliver them (it delivers every matching event again).
//
// h is typically the application's events.Handler, possibly wrapped in middlewares. An
// events.Inbox middleware needs InboxConfig.Consumer set: outside a router the message
// carries no handler name.
func Deliver(tb testing.TB, ctx context.Context, h message.HandlerFunc, topics ...string) (int, error) {
	tb.Helper()
	if h == nil {
		tb.Fatal("uowtest: Deliver needs a handler")
		return 0, nil
	}
	n := 0
	for _, ev := range Emitted(tb, ctx) {
		if len(topics) > 0 && !slices.Contains(topics, ev.Topic) {
			continue
		}
		msg, err := events.NewMessage(ev)
		if err != nil {
			tb.Fatalf("uowtest: %v", err)
			return n, nil
		}
		msg.SetContext(ctx)
		if _, err := h(msg); err != nil {
			return n, fmt.Errorf("uowtest: the handler failed on event %s (topic %q): %w", ev.ID, ev.Topic, err)
		}
		n++
	}
	return n, nil
}

// describe lists evs for a failure message.
func describe(evs []events.Event) string {
	if len(evs) == 0 {
		return " none"
	}
	var sb strings.Builder
	for _, ev := range evs {
		raw, _ := ev.Payload.([]byte)
		fmt.Fprintf(&sb, "\n\ttopic=%q key=%q type=%q payload=%s", ev.Topic, ev.Key, ev.Type, raw)
	}
	return sb.String()
}
