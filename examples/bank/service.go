package bank

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// Topics of the events the use-cases emit.
const (
	TopicAccountOpened     = "account.opened"
	TopicTransferCompleted = "transfer.completed"
	TopicBonusGranted      = "bonus.granted"
)

// Topics lists every topic the use-cases emit on.
func Topics() []string {
	return []string{TopicAccountOpened, TopicTransferCompleted, TopicBonusGranted}
}

// Event payloads.
type (
	// AccountOpened is the payload of "account.opened".
	AccountOpened struct {
		ID      int64  `json:"id"`
		Owner   string `json:"owner"`
		Balance int64  `json:"balance"`
	}
	// TransferCompleted is the payload of "transfer.completed".
	TransferCompleted struct {
		ID     int64 `json:"id"`
		From   int64 `json:"from"`
		To     int64 `json:"to"`
		Amount int64 `json:"amount"`
	}
	// BonusGranted is the payload of "bonus.granted".
	BonusGranted struct {
		Account int64 `json:"account"`
		Amount  int64 `json:"amount"`
	}
)

// Service holds the use-cases of the examples: each runs in a unit of work, and the ent
// client joins its transaction through the context.
type Service struct {
	Client *ent.Client
	TM     *txmanager.Manager
	Units  *uow.Manager
}

func key(id int64) events.Option { return events.WithKey(strconv.FormatInt(id, 10)) }

// Open opens an account with an initial balance.
func (b *Service) Open(ctx context.Context, owner string, balance int64) (int64, error) {
	var id int64
	err := b.Units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		a, err := b.Client.Account.Create().SetOwner(owner).SetBalance(balance).Save(ctx)
		if err != nil {
			return err
		}
		id = a.ID
		return u.Emit(events.New(TopicAccountOpened, AccountOpened{a.ID, a.Owner, a.Balance}, key(a.ID)))
	})
	return id, err
}

// Transfer moves amount from one account to another. When bonus is positive, a nested
// scope also tries to grant the receiver a bonus paid by the sender; if that fails (the
// sender cannot afford it) only the bonus is rolled back, with its event.
func (b *Service) Transfer(ctx context.Context, from, to, amount, bonus int64) error {
	return b.Units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		if _, err := b.Client.Account.UpdateOneID(from).AddBalance(-amount).Save(ctx); err != nil {
			return fmt.Errorf("debit account %d: %w", from, err)
		}
		if _, err := b.Client.Account.UpdateOneID(to).AddBalance(amount).Save(ctx); err != nil {
			return fmt.Errorf("credit account %d: %w", to, err)
		}
		t, err := b.Client.Transfer.Create().SetFromID(from).SetToID(to).SetAmount(amount).Save(ctx)
		if err != nil {
			return err
		}
		if bonus > 0 {
			// A savepoint: its failure rolls back the bonus and its event only.
			_ = b.TM.Do(ctx, func(ctx context.Context) error {
				if _, err := b.Client.Account.UpdateOneID(to).AddBalance(bonus).Save(ctx); err != nil {
					return err
				}
				if err := uow.Emit(ctx, events.New(TopicBonusGranted, BonusGranted{to, bonus}, key(to))); err != nil {
					return err
				}
				_, err := b.Client.Account.UpdateOneID(from).AddBalance(-bonus).Save(ctx)
				return err
			}, txmanager.Nested())
		}
		return u.Emit(events.New(TopicTransferCompleted, TransferCompleted{t.ID, from, to, amount}, key(from)))
	})
}

// Outcome describes how a use-case ended, for the examples' output.
func Outcome(err error) string {
	if err == nil {
		return "committed"
	}
	var constraint *ent.ConstraintError
	if errors.As(err, &constraint) {
		return "rolled back (a balance would go negative)"
	}
	return "rolled back: " + err.Error()
}
