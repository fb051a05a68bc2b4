package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/txmanager"
)

// Span and metric attributes of transaction scopes.
const (
	attrPropagation = attribute.Key("uno.tx.propagation")
	attrIsolation   = attribute.Key("uno.tx.isolation")
	attrReadOnly    = attribute.Key("uno.tx.read_only")
	attrAttempt     = attribute.Key("uno.tx.attempt")
	attrDepth       = attribute.Key("uno.tx.savepoint_depth")
	attrOutcome     = attribute.Key("uno.tx.outcome")
	attrName        = attribute.Key("uno.tx.name")
	attrKind        = attribute.Key("uno.tx.kind")
)

// Scope kinds, as the metrics name them.
const (
	kindTransaction = "transaction"
	kindSavepoint   = "savepoint"
)

// outcomes lists every outcome, for the precomputed attribute sets.
var outcomes = [...]txmanager.Outcome{txmanager.OutcomeCommitted, txmanager.OutcomeRolledBack,
	txmanager.OutcomeRetried, txmanager.OutcomeCommitUnknown, txmanager.OutcomeReleased,
	txmanager.OutcomeJoined, txmanager.OutcomeRollbackOnly}

// txObserver is the txmanager.Observer of a Telemetry.
type txObserver struct {
	tracer trace.Tracer // nil: no spans

	duration   metric.Float64Histogram // nil: no metrics
	scopes     metric.Int64Counter
	retries    metric.Int64Counter
	spRollback metric.Int64Counter
	// sets[kind][outcome]: the metric attributes, built once.
	sets [2][len(outcomes) + 1]metric.MeasurementOption
}

func newTxObserver(tracer trace.Tracer, meter metric.Meter) (*txObserver, error) {
	o := &txObserver{tracer: tracer}
	if meter == nil {
		return o, nil
	}
	var err error
	if o.duration, err = meter.Float64Histogram("uno.tx.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of transaction attempts and savepoint scopes, by kind and outcome.")); err != nil {
		return nil, err
	}
	if o.scopes, err = meter.Int64Counter("uno.tx.scopes",
		metric.WithDescription("Transaction attempts and savepoint scopes ended, by kind and outcome.")); err != nil {
		return nil, err
	}
	if o.retries, err = meter.Int64Counter("uno.tx.retries",
		metric.WithDescription("Transaction attempts that failed and were run again.")); err != nil {
		return nil, err
	}
	if o.spRollback, err = meter.Int64Counter("uno.tx.savepoint.rollbacks",
		metric.WithDescription("Savepoint scopes rolled back to their savepoint.")); err != nil {
		return nil, err
	}
	for k, kind := range [2]string{kindTransaction, kindSavepoint} {
		for _, out := range outcomes {
			o.sets[k][out] = metric.WithAttributeSet(attribute.NewSet(attrKind.String(kind), attrOutcome.String(out.String())))
		}
	}
	return o, nil
}

// TxObserver returns the observer to set as txmanager.Config.Observer: spans and
// metrics of transaction attempts and savepoint scopes, spans of joined scopes. Without
// providers it returns nil, and the Manager observes nothing.
func (t *Telemetry) TxObserver() txmanager.Observer {
	if t.tx == nil {
		return nil
	}
	return t.tx
}

// StartScope implements txmanager.Observer.
func (o *txObserver) StartScope(ctx context.Context, s txmanager.ScopeInfo) (context.Context, func(txmanager.ScopeEnd)) {
	if s.Joined {
		return o.startJoined(ctx, s)
	}
	start := time.Now()
	var span trace.Span
	if o.tracer != nil {
		name, attrs := "uno.tx", []attribute.KeyValue{
			attrPropagation.String(s.Propagation.String()),
			attrAttempt.Int(s.Attempt),
		}
		if s.Depth > 0 {
			name, attrs = "uno.savepoint", []attribute.KeyValue{
				attrPropagation.String(s.Propagation.String()),
				attrDepth.Int(s.Depth),
			}
		} else {
			iso := string(s.Isolation)
			if iso == "" {
				iso = "default"
			}
			attrs = append(attrs, attrIsolation.String(iso), attrReadOnly.Bool(s.ReadOnly))
		}
		if s.Name != "" {
			attrs = append(attrs, attrName.String(s.Name))
		}
		ctx, span = o.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	}
	kind := 0
	if s.Depth > 0 {
		kind = 1
	}
	return ctx, func(e txmanager.ScopeEnd) {
		if span != nil {
			span.SetAttributes(attrOutcome.String(e.Outcome.String()))
			if e.Err != nil && e.Outcome != txmanager.OutcomeRetried {
				span.RecordError(e.Err)
				span.SetStatus(codes.Error, e.Outcome.String())
			} else if e.Err != nil {
				span.RecordError(e.Err)
			}
			span.End()
		}
		if o.duration == nil {
			return
		}
		// Measurements take no context of their own: the span's ended, and exemplars
		// need none.
		mctx := context.Background()
		set := o.sets[kind][e.Outcome]
		o.duration.Record(mctx, time.Since(start).Seconds(), set)
		o.scopes.Add(mctx, 1, set)
		switch {
		case e.Outcome == txmanager.OutcomeRetried:
			o.retries.Add(mctx, 1)
		case kind == 1 && e.Outcome == txmanager.OutcomeRolledBack:
			o.spRollback.Add(mctx, 1)
		}
	}
}

// endNothing ends a scope that nothing was started for.
func endNothing(txmanager.ScopeEnd) {}

// startJoined starts the span of a joined scope: it has no metrics, its time and outcome
// being its transaction's.
func (o *txObserver) startJoined(ctx context.Context, s txmanager.ScopeInfo) (context.Context, func(txmanager.ScopeEnd)) {
	if o.tracer == nil {
		return ctx, endNothing
	}
	attrs := make([]attribute.KeyValue, 1, 3)
	attrs[0] = attrPropagation.String(s.Propagation.String())
	if s.Depth > 0 {
		attrs = append(attrs, attrDepth.Int(s.Depth))
	}
	if s.Name != "" {
		attrs = append(attrs, attrName.String(s.Name))
	}
	ctx, span := o.tracer.Start(ctx, "uno.join", trace.WithAttributes(attrs...))
	return ctx, func(e txmanager.ScopeEnd) {
		span.SetAttributes(attrOutcome.String(e.Outcome.String()))
		if e.Err != nil {
			span.RecordError(e.Err)
			span.SetStatus(codes.Error, e.Outcome.String())
		}
		span.End()
	}
}
