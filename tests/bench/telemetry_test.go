package bench

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/uno-framework/uno/telemetry"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// BenchmarkTxTelemetry measures what OpenTelemetry costs a transaction: uno's Do with
// no telemetry (impl=off: what an application that configures none gets), beside the
// same Do with telemetry on (impl=on: the SDK's tracer and meter providers, a span per
// transaction attempt and savepoint scope and per statement batch (otelpgx), and the
// transaction metrics; spans are sampled and ended but exported nowhere, metrics
// aggregated and never collected).
func BenchmarkTxTelemetry(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	offPool := benchPool(b)
	execOrFatal(b, offPool, txCreateSQL)
	off := unoTx(b, offPool)
	off.name = "off"

	tp := sdktrace.NewTracerProvider()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := telemetry.New(telemetry.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	cfg := offPool.Config()
	cfg.ConnConfig.Tracer = tel.QueryTracer()
	onPool := pgtest.NewPool(b, cfg)
	warm(b, onPool)
	on := unoTxWith(b, onPool, txmanager.Config{Observer: tel.TxObserver()})
	on.name = "on"

	for _, c := range []struct {
		name string
		run  func(txImpl) func(context.Context) error
	}{
		{"OneInsert", func(i txImpl) func(context.Context) error { return i.oneInsert }},
		{"Nested", func(i txImpl) func(context.Context) error { return i.nested }},
	} {
		b.Run("case="+c.name, func(b *testing.B) {
			for _, impl := range []txImpl{off, on} {
				b.Run("impl="+impl.name, func(b *testing.B) {
					run := c.run(impl)
					b.ReportAllocs()
					cpu := measureCPU(b)
					for b.Loop() {
						if err := run(ctx); err != nil {
							b.Fatal(err)
						}
					}
					cpu()
				})
			}
		})
	}
}
