// Command telemetry wires uno's OpenTelemetry instrumentation (package telemetry) to a
// Prometheus exporter, runs a few use-cases whose events go through the outbox, the
// relay and an idempotent handler, and prints what a Prometheus scrape of /metrics
// returns for uno's metrics. It is a module of its own, so that the exporter and the
// Prometheus client stay out of the library's go.mod:
//
//	cd examples/telemetry && go run .
package main
