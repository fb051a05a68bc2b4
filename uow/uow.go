package uow

import (
	"context"
	"errors"
	"fmt"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/txmanager"
)

// ErrNoUnitOfWork is returned by [Emit] when the context does not come from
// [Manager.Do]: there is no unit of work to record the events on.
var ErrNoUnitOfWork = errors.New("uow: no unit of work in the context; call Emit inside uow.Manager.Do with the context Do passed to the use-case")

// Manager runs units of work. It holds no connection of its own: the transaction
// manager owns the pool. A Manager is safe for concurrent use; an application needs one.
type Manager struct {
	tm     *txmanager.Manager
	outbox *events.Outbox
}

// NewManager returns a Manager that runs units of work in tm's transactions and writes
// their events through outbox. A nil outbox means events.NewOutbox with the default
// configuration (JSON payloads).
func NewManager(tm *txmanager.Manager, outbox *events.Outbox) (*Manager, error) {
	if tm == nil {
		return nil, errors.New("uow: NewManager needs a *txmanager.Manager; build one with txmanager.New")
	}
	if outbox == nil {
		outbox = events.NewOutbox(events.OutboxConfig{})
	}
	return &Manager{tm: tm, outbox: outbox}, nil
}

// TxManager returns the transaction manager units of work run in.
func (m *Manager) TxManager() *txmanager.Manager { return m.tm }

// Outbox returns the outbox events are written through.
func (m *Manager) Outbox() *events.Outbox { return m.outbox }

// UnitOfWork is one run of a use-case, handed to the function given to [Manager.Do].
// It is valid only during that call and must not be used from other goroutines.
type UnitOfWork struct {
	ctx context.Context
	m   *Manager
}

// Context returns the context of the unit of work: the one Do passed to the use-case,
// which carries its transaction.
func (u *UnitOfWork) Context() context.Context { return u.ctx }

// Emit records events on the unit of work's scope. They are written to the outbox when
// the outermost transaction commits and dropped if this scope rolls back. A payload
// that cannot be encoded is reported here, and nothing is recorded.
func (u *UnitOfWork) Emit(evs ...events.Event) error {
	return u.m.outbox.Emit(u.ctx, evs...)
}

// unitKey is the context key under which Do stores the *UnitOfWork.
type unitKey struct{}

// unitContext carries the unit of work in a context without a separate allocation:
// the UnitOfWork is stored in it and it answers Value for unitKey.
type unitContext struct {
	context.Context
	u UnitOfWork
}

func (c *unitContext) Value(key any) any {
	if _, ok := key.(unitKey); ok {
		return &c.u
	}
	return c.Context.Value(key)
}

// Do runs fn as a unit of work in a transaction of the transaction manager, with opts
// (propagation, isolation, retries, timeout, ...: see txmanager). fn receives a context
// that carries the transaction — pass it to every call that should join it — and the
// UnitOfWork to emit events on.
//
// When fn returns nil and the transaction commits, the events emitted in it (and in
// scopes inside it that did not roll back) are in the outbox, written in the round trip
// of COMMIT. When fn returns an error, Do returns it and the scope rolls back with its
// events. Retries of serialization failures and deadlocks run fn again with a fresh
// unit of work; the events of the failed attempt are gone.
//
// With txmanager.Nested, Do is a savepoint scope inside an outer unit of work: its
// failure drops only its own writes and events.
func (m *Manager) Do(ctx context.Context, fn func(ctx context.Context, u *UnitOfWork) error, opts ...txmanager.Option) error {
	if fn == nil {
		return errors.New("uow: Do needs a function to run")
	}
	return m.tm.Do(ctx, func(ctx context.Context) error {
		uc := &unitContext{Context: ctx}
		uc.u = UnitOfWork{ctx: uc, m: m}
		return fn(uc, &uc.u)
	}, opts...)
}

// Emit records events on the unit of work ctx belongs to, for code that holds only the
// context (a repository, a domain service). Events follow the innermost transaction
// scope of ctx: a txmanager.Nested scope opened inside the unit of work that rolls back
// drops them. Outside a unit of work it returns an error wrapping [ErrNoUnitOfWork].
func Emit(ctx context.Context, evs ...events.Event) error {
	u, ok := ctx.Value(unitKey{}).(*UnitOfWork)
	if !ok {
		return fmt.Errorf("uow: emit %d event(s): %w", len(evs), ErrNoUnitOfWork)
	}
	return u.m.outbox.Emit(ctx, evs...)
}

// FromContext returns the unit of work ctx belongs to, if any.
func FromContext(ctx context.Context) (*UnitOfWork, bool) {
	u, ok := ctx.Value(unitKey{}).(*UnitOfWork)
	return u, ok
}
