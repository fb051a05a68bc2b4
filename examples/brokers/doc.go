// Command brokers runs the quickstart's use-cases (examples/bank: two accounts opened, a
// transfer with a bonus savepoint that fails, a transfer that rolls back) with the relay
// publishing to a real broker, NATS JetStream or RabbitMQ, chosen by a flag, and a
// subscriber reading the events back from it through Watermill's router and uno's inbox:
//
//	go run . -broker nats       # NATS JetStream on nats://127.0.0.1:4222
//	go run . -broker rabbitmq   # RabbitMQ on amqp://guest:guest@127.0.0.1:5672/
//
// It is a module of its own, so that the brokers' client libraries stay out of uno's
// go.mod.
package main
