package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uno-framework/uno/txmanager"
)

// InboxConfig configures an [Inbox]. The zero value is ready to use.
type InboxConfig struct {
	// Consumer names the consumer in uno_inbox. Default: the name of the router
	// handler the message reached (so one Inbox serves every handler of a router, each
	// deduplicating on its own).
	Consumer string
	// TxOptions are passed to txmanager.Manager.Do for the handling transaction
	// (isolation, retries, timeout...).
	TxOptions []txmanager.Option
	// Logger receives a debug record per skipped duplicate. Default: slog.Default().
	Logger *slog.Logger
}

// Inbox makes Watermill handlers idempotent: its [Inbox.Middleware] runs the handler
// inside a transaction of the manager and records the message UUID, with the
// consumer's name, in uno_inbox in that same transaction. A message whose UUID is
// already recorded for the consumer is acknowledged without running the handler, so a
// redelivered message has no second effect on the database — provided the handler
// writes through the context it is given (msg.Context(), or the ctx of [Handle]).
//
// Two deliveries of one message at the same moment are safe too: the second INSERT
// waits for the first transaction and then finds its row.
type Inbox struct {
	tm  *txmanager.Manager
	cfg InboxConfig
	log *slog.Logger
}

// inboxSQL records that consumer $1 handled message $2; no row is inserted when it
// already had.
const inboxSQL = `INSERT INTO uno_inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT (consumer, message_id) DO NOTHING`

// NewInbox returns an Inbox whose transactions run on tm.
func NewInbox(tm *txmanager.Manager, cfg InboxConfig) (*Inbox, error) {
	if tm == nil {
		return nil, errors.New("events: NewInbox needs a *txmanager.Manager, got nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Inbox{tm: tm, cfg: cfg, log: cfg.Logger}, nil
}

// Middleware is the Watermill middleware: add it to a router (Router.AddMiddleware) or
// to one handler (Handler.AddMiddleware). While the handler runs, msg.Context() carries
// the transaction; afterwards the message gets its original context back. Messages the
// handler returns are published by the router after the commit.
func (in *Inbox) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		orig := msg.Context()
		consumer := in.cfg.Consumer
		if consumer == "" {
			consumer = message.HandlerNameFromCtx(orig)
		}
		if consumer == "" {
			return nil, ErrNoConsumer
		}
		var out []*message.Message
		err := in.tm.Do(orig, func(ctx context.Context) error {
			out = nil
			tag, err := in.tm.Querier(ctx).Exec(ctx, inboxSQL, consumer, msg.UUID)
			if err != nil {
				if isUndefinedTable(err) {
					return errNotMigrated(err)
				}
				return fmt.Errorf("events: record message %s in the inbox of %q: %w", msg.UUID, consumer, err)
			}
			if tag.RowsAffected() == 0 {
				in.log.LogAttrs(ctx, slog.LevelDebug, "events: inbox skipped a message already handled",
					slog.String("consumer", consumer), slog.String("message_uuid", msg.UUID))
				return nil
			}
			msg.SetContext(ctx)
			defer msg.SetContext(orig)
			out, err = h(msg)
			return err
		}, in.cfg.TxOptions...)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// Prune deletes inbox rows older than olderThan (all consumers) and returns how many.
// Keep rows at least as long as a message can be redelivered by the broker.
func (in *Inbox) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := in.tm.Querier(ctx).Exec(ctx,
		`DELETE FROM uno_inbox WHERE processed_at < now() - $1 * interval '1 millisecond'`, olderThan.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("events: prune the inbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
