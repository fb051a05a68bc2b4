package telemetry_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/telemetry"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// otelEnv is an in-memory OpenTelemetry SDK, a Telemetry over it, and a pool and
// Manager wired to it.
type otelEnv struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	tel    *telemetry.Telemetry
	pool   *pgxpool.Pool
	tm     *txmanager.Manager
}

func newOtelEnv(t *testing.T) *otelEnv {
	t.Helper()
	e := &otelEnv{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() {
		_ = e.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := telemetry.New(telemetry.Config{TracerProvider: e.tp, MeterProvider: mp})
	require.NoError(t, err)
	e.tel = tel
	cfg := pgtest.PoolConfig(t)
	cfg.ConnConfig.Tracer = tel.QueryTracer()
	e.pool = pgtest.NewPool(t, cfg)
	require.NoError(t, schema.MigratePool(t.Context(), e.pool))
	e.tm, err = txmanager.New(e.pool, txmanager.Config{Observer: tel.TxObserver(),
		Retry: txmanager.RetryPolicy{InitialInterval: 1e6, MaxInterval: 2e6}})
	require.NoError(t, err)
	return e
}

// ended returns the ended spans named name.
func (e *otelEnv) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// metrics collects the metrics and returns them by name.
func (e *otelEnv) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, e.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum returns the total of a counter's or gauge's data points, or the count of a
// histogram's, among those whose attributes have every "key=value" of match.
func sum(data metricdata.Aggregation, match ...string) float64 {
	var total float64
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += float64(p.Value)
			}
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += p.Value
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += float64(p.Value)
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += p.Value
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += float64(p.Count)
			}
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes.ToSlice(), match) {
				total += float64(p.Count)
			}
		}
	}
	return total
}

// matches reports whether attrs hold every "key=value" of match.
func matches(attrs []attribute.KeyValue, match []string) bool {
	for _, m := range match {
		found := false
		for _, a := range attrs {
			if string(a.Key)+"="+a.Value.Emit() == m {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
