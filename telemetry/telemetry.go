package telemetry

import (
	"context"
	"errors"
	"fmt"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names uno's tracer and meter.
const instrumentationName = "github.com/uno-framework/uno"

// Config configures [New]. Its zero value is valid and turns everything off.
type Config struct {
	// TracerProvider makes uno's spans; nil: no spans.
	TracerProvider trace.TracerProvider
	// MeterProvider makes uno's metrics; nil: no metrics.
	MeterProvider metric.MeterProvider
	// Propagator carries the trace context in event metadata. Default: W3C Trace
	// Context (traceparent, tracestate).
	Propagator propagation.TextMapPropagator
}

// Telemetry makes uno's spans and metrics. Build one with [New] at start-up and hand
// its hooks to the packages it observes (see the package documentation). It is safe for
// concurrent use.
type Telemetry struct {
	tp     trace.TracerProvider
	mp     metric.MeterProvider
	tracer trace.Tracer // nil: no spans
	meter  metric.Meter // nil: no metrics
	prop   propagation.TextMapPropagator

	tx    *txObserver
	relay relayInstruments
}

// New returns a Telemetry over cfg's providers, creating its instruments.
func New(cfg Config) (*Telemetry, error) {
	t := &Telemetry{tp: cfg.TracerProvider, mp: cfg.MeterProvider, prop: cfg.Propagator}
	if t.prop == nil {
		t.prop = propagation.TraceContext{}
	}
	if t.tp != nil {
		t.tracer = t.tp.Tracer(instrumentationName)
	}
	if t.mp != nil {
		t.meter = t.mp.Meter(instrumentationName)
	}
	if t.tracer == nil && t.meter == nil {
		return t, nil
	}
	tx, err := newTxObserver(t.tracer, t.meter)
	if err != nil {
		return nil, err
	}
	t.tx = tx
	if t.meter != nil {
		if t.relay, err = newRelayInstruments(t.meter); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// QueryTracer returns a pgx tracer that makes a span per statement, batch and COPY
// (otelpgx), to set as the pool's ConnConfig.Tracer; uno's pool composes it with its
// own. Without a TracerProvider it returns nil (no tracer).
func (t *Telemetry) QueryTracer() pgx.QueryTracer {
	if t.tp == nil {
		return nil
	}
	opts := []otelpgx.Option{otelpgx.WithTracerProvider(t.tp), otelpgx.WithTrimSQLInSpanName()}
	if t.mp != nil {
		opts = append(opts, otelpgx.WithMeterProvider(t.mp))
	}
	return otelpgx.NewTracer(opts...)
}

// ObservePool records the metrics of pool (pgxpool.*: acquired and idle connections,
// acquisitions that waited and how long, ...) through otelpgx. Without a MeterProvider
// it does nothing.
func (t *Telemetry) ObservePool(pool *pgxpool.Pool) error {
	if t.mp == nil {
		return nil
	}
	if pool == nil {
		return errors.New("telemetry: ObservePool needs a pool")
	}
	if err := otelpgx.RecordStats(pool, otelpgx.WithStatsMeterProvider(t.mp)); err != nil {
		return fmt.Errorf("telemetry: observe the pool: %w", err)
	}
	return nil
}

// InjectMetadata writes the trace context of ctx (W3C traceparent by default) into md.
// Set it as events.OutboxConfig.ContextMetadata: each event then carries the trace of
// the scope that emitted it to its handler. Without a TracerProvider it adds nothing.
func (t *Telemetry) InjectMetadata(ctx context.Context, md map[string]string) {
	if t.tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	t.prop.Inject(ctx, propagation.MapCarrier(md))
}

// extract returns ctx with the trace context md carries.
func (t *Telemetry) extract(ctx context.Context, md map[string]string) context.Context {
	return t.prop.Extract(ctx, propagation.MapCarrier(md))
}
