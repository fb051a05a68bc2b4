// Package brokers tests uno's event delivery end to end through real message brokers:
// events committed in a transaction, forwarded by events.Relay to a Watermill
// publisher for RabbitMQ (AMQP) or NATS JetStream, and handled by a router subscribed
// to the same broker, each once, in order per key; and one trace (package telemetry)
// from the use-case that emitted an event, through the relay, to its handler.
//
// It is a module of its own (github.com/uno-framework/uno/tests/brokers), so that the
// broker clients stay out of the library's go.mod. Run it from this directory:
//
//	cd tests/brokers && go test ./...
//
// A test is skipped when its broker does not answer (RabbitMQ on 127.0.0.1:5672 as
// guest/guest, NATS with JetStream on 127.0.0.1:4222).
package brokers
