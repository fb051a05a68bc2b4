package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/schema"
)

// defaultLimit is how many events or dead letters a listing shows without --limit.
const defaultLimit = 100

// migrate applies uno's migrations, or prints their DDL with --sql.
func (c *cli) migrate(ctx context.Context, args []string) error {
	fs := c.flagSet("migrate")
	sqlOnly := fs.Bool("sql", false, "print the DDL instead of applying it")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *sqlOnly {
		if c.json {
			return c.printJSON(struct {
				SQL string `json:"sql"`
			}{schema.SQL()})
		}
		_, err := io.WriteString(c.out, schema.SQL())
		return err
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		rec := &changeRecorder{}
		if err := schema.Migrate(ctx, p, schema.WithLogger(slog.New(rec))); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(struct {
				Changes []change `json:"changes"`
			}{rec.changes})
		}
		if len(rec.changes) == 0 {
			_, err := fmt.Fprintln(c.out, "uno's tables are up to date: nothing to change")
			return err
		}
		fmt.Fprintf(c.out, "applied %d change(s):\n", len(rec.changes))
		for _, ch := range rec.changes {
			fmt.Fprintf(c.out, "  %s\n", ch.SQL)
		}
		return nil
	})
}

// change is one change schema.Migrate applied.
type change struct {
	Comment string `json:"comment"`
	SQL     string `json:"sql"`
}

// changeRecorder is a slog.Handler that collects the changes schema.Migrate logs.
type changeRecorder struct {
	changes []change
}

func (r *changeRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *changeRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *changeRecorder) WithGroup(string) slog.Handler            { return r }

func (r *changeRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "schema: applying change" {
		return nil
	}
	var ch change
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "comment":
			ch.Comment = a.Value.String()
		case "sql":
			ch.SQL = a.Value.String()
		}
		return true
	})
	r.changes = append(r.changes, ch)
	return nil
}

// lagJSON is the JSON of outbox lag.
type lagJSON struct {
	Pending       int64   `json:"pending"`
	Retrying      int64   `json:"retrying"`
	OldestSeconds float64 `json:"oldest_seconds"`
	DeadLetters   int64   `json:"dead_letters"`
}

func newLagJSON(l events.Lag) lagJSON {
	return lagJSON{Pending: l.Pending, Retrying: l.Retrying, OldestSeconds: l.Oldest.Seconds(), DeadLetters: l.DeadLetters}
}

// outboxLag prints the state of the outbox.
func (c *cli) outboxLag(ctx context.Context, args []string) error {
	fs := c.flagSet("outbox lag")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		l, err := events.ReadLag(ctx, p.Pool())
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(newLagJSON(l))
		}
		return c.table([]string{"PENDING", "RETRYING", "OLDEST", "DEAD_LETTERS"}, [][]string{{
			strconv.FormatInt(l.Pending, 10), strconv.FormatInt(l.Retrying, 10),
			l.Oldest.Round(time.Millisecond).String(), strconv.FormatInt(l.DeadLetters, 10)}})
	})
}

// eventJSON is the JSON of an event.
type eventJSON struct {
	ID              string            `json:"id"`
	Topic           string            `json:"topic"`
	Key             string            `json:"key"`
	Type            string            `json:"type"`
	OccurredAt      time.Time         `json:"occurred_at"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	PayloadEncoding string            `json:"payload_encoding"`
	Payload         any               `json:"payload"`
}

func newEventJSON(ev events.Event) eventJSON {
	raw, _ := ev.Payload.([]byte)
	pl := decodePayload(raw)
	return eventJSON{ID: ev.ID.String(), Topic: ev.Topic, Key: ev.Key, Type: ev.Type, OccurredAt: ev.OccurredAt,
		Metadata: ev.Metadata, PayloadEncoding: pl.Encoding, Payload: pl.value()}
}

// pendingJSON is the JSON of a pending event.
type pendingJSON struct {
	OutboxID  int64 `json:"outbox_id"`
	Partition int16 `json:"partition"`
	Attempts  int32 `json:"attempts"`
	eventJSON
}

// outboxPending prints the events waiting in the outbox.
func (c *cli) outboxPending(ctx context.Context, args []string) error {
	fs := c.flagSet("outbox pending")
	limit := fs.Int("limit", defaultLimit, "show at most this many events (0: all)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("outbox pending: --limit %d: must not be negative", *limit)
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		pending, err := events.ReadPending(ctx, p.Pool(), *limit)
		if err != nil {
			return err
		}
		if c.json {
			out := make([]pendingJSON, 0, len(pending))
			for _, pe := range pending {
				out = append(out, pendingJSON{OutboxID: pe.OutboxID, Partition: pe.Partition, Attempts: pe.Attempts,
					eventJSON: newEventJSON(pe.Event)})
			}
			return c.printJSON(out)
		}
		rows := make([][]string, 0, len(pending))
		for _, pe := range pending {
			raw, _ := pe.Payload.([]byte)
			rows = append(rows, []string{strconv.FormatInt(pe.OutboxID, 10), strconv.Itoa(int(pe.Partition)),
				strconv.Itoa(int(pe.Attempts)), pe.Topic, orDash(pe.Key), orDash(pe.Type),
				pe.OccurredAt.UTC().Format(time.RFC3339), short(decodePayload(raw).Text, 60)})
		}
		return c.table([]string{"OUTBOX_ID", "PARTITION", "ATTEMPTS", "TOPIC", "KEY", "TYPE", "OCCURRED_AT", "PAYLOAD"}, rows)
	})
}

// deadLetterJSON is the JSON of a dead letter.
type deadLetterJSON struct {
	ID        int64     `json:"id"`
	OutboxID  int64     `json:"outbox_id"`
	Partition int16     `json:"partition"`
	CreatedAt time.Time `json:"created_at"`
	Attempts  int32     `json:"attempts"`
	LastError string    `json:"last_error"`
	FailedAt  time.Time `json:"failed_at"`
	Event     eventJSON `json:"event"`
}

func newDeadLetterJSON(d events.DeadLetter) deadLetterJSON {
	return deadLetterJSON{ID: d.ID, OutboxID: d.OutboxID, Partition: d.Partition, CreatedAt: d.CreatedAt,
		Attempts: d.Attempts, LastError: d.LastError, FailedAt: d.FailedAt, Event: newEventJSON(d.Event)}
}

// deadLettersList prints dead letters, oldest first.
func (c *cli) deadLettersList(ctx context.Context, args []string) error {
	fs := c.flagSet("deadletters list")
	limit := fs.Int("limit", defaultLimit, "show at most this many dead letters (0: all)")
	after := fs.Int64("after", 0, "show the dead letters with an id above this one")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("deadletters list: --limit %d: must not be negative", *limit)
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		dls, err := events.ReadDeadLetters(ctx, p.Pool(), *after, *limit)
		if err != nil {
			return err
		}
		if c.json {
			out := make([]deadLetterJSON, 0, len(dls))
			for _, d := range dls {
				out = append(out, newDeadLetterJSON(d))
			}
			return c.printJSON(out)
		}
		rows := make([][]string, 0, len(dls))
		for _, d := range dls {
			rows = append(rows, []string{strconv.FormatInt(d.ID, 10), d.Event.Topic, orDash(d.Event.Key),
				strconv.Itoa(int(d.Attempts)), d.FailedAt.UTC().Format(time.RFC3339), short(d.LastError, 60)})
		}
		return c.table([]string{"ID", "TOPIC", "KEY", "ATTEMPTS", "FAILED_AT", "LAST_ERROR"}, rows)
	})
}

// parseIDs parses dead letter ids.
func parseIDs(cmd string, args []string) ([]int64, error) {
	ids := make([]int64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, usagef("%s: %q is not a dead letter id (a positive integer, as deadletters list shows)", cmd, a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// deadLettersShow prints one dead letter in full.
func (c *cli) deadLettersShow(ctx context.Context, args []string) error {
	fs := c.flagSet("deadletters show")
	rest, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	ids, err := parseIDs("deadletters show", rest)
	if err != nil {
		return err
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		d, err := events.ReadDeadLetter(ctx, p.Pool(), ids[0])
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(newDeadLetterJSON(d))
		}
		raw, _ := d.Event.Payload.([]byte)
		pl := decodePayload(raw)
		pairs := [][2]string{
			{"id", strconv.FormatInt(d.ID, 10)},
			{"event id", d.Event.ID.String()},
			{"topic", d.Event.Topic},
			{"key", orDash(d.Event.Key)},
			{"type", orDash(d.Event.Type)},
			{"occurred at", d.Event.OccurredAt.UTC().Format(time.RFC3339Nano)},
			{"entered outbox", d.CreatedAt.UTC().Format(time.RFC3339Nano)},
			{"failed at", d.FailedAt.UTC().Format(time.RFC3339Nano)},
			{"attempts", strconv.Itoa(int(d.Attempts))},
			{"outbox row", fmt.Sprintf("id %d, partition %d", d.OutboxID, d.Partition)},
			{"last error", d.LastError},
		}
		for _, k := range slices.Sorted(maps.Keys(d.Event.Metadata)) {
			pairs = append(pairs, [2]string{"metadata " + k, d.Event.Metadata[k]})
		}
		pairs = append(pairs, [2]string{"payload (" + pl.Encoding + ")", pl.Text})
		return c.fields(pairs)
	})
}

// deadLettersRequeue puts dead letters back into the outbox.
func (c *cli) deadLettersRequeue(ctx context.Context, args []string) error {
	fs := c.flagSet("deadletters requeue")
	rest, err := c.parse(fs, args, 1, -1)
	if err != nil {
		return err
	}
	ids, err := parseIDs("deadletters requeue", rest)
	if err != nil {
		return err
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		n, err := events.Requeue(ctx, p.Pool(), ids...)
		if err != nil {
			return err
		}
		if c.json {
			if err := c.printJSON(struct {
				Requested int   `json:"requested"`
				Requeued  int64 `json:"requeued"`
			}{len(ids), n}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(c.out, "requeued %d of %d dead letter(s)\n", n, len(ids))
		}
		if int(n) < len(ids) {
			return fmt.Errorf("%w: %d of the ids given (requeued or purged already, or never there)",
				events.ErrDeadLetterNotFound, len(ids)-int(n))
		}
		return nil
	})
}

// parseAge parses a Go duration, or a whole number of days such as "7d".
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n >= 0 && n < 100_000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age: give a Go duration such as 72h or a number of days such as 7d", s)
	}
	return d, nil
}

// deadLettersPurge deletes old dead letters.
func (c *cli) deadLettersPurge(ctx context.Context, args []string) error {
	fs := c.flagSet("deadletters purge")
	olderThan := fs.String("older-than", "", "delete the dead letters that failed longer ago than this (e.g. 72h, 7d)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *olderThan == "" {
		return usagef("deadletters purge: --older-than is required (e.g. --older-than 7d; 0s purges all)")
	}
	age, err := parseAge(*olderThan)
	if err != nil {
		return usagef("deadletters purge: --older-than: %v", err)
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		n, err := events.PurgeDeadLetters(ctx, p.Pool(), age)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(struct {
				Purged int64 `json:"purged"`
			}{n})
		}
		_, err = fmt.Fprintf(c.out, "purged %d dead letter(s) older than %s\n", n, age)
		return err
	})
}

// healthJSON is the JSON of health.
type healthJSON struct {
	Reachable     bool     `json:"reachable"`
	LatencyMS     float64  `json:"latency_ms"`
	ServerVersion string   `json:"server_version"`
	InRecovery    bool     `json:"in_recovery"`
	Migrated      bool     `json:"migrated"`
	Outbox        *lagJSON `json:"outbox,omitempty"`
	Pool          poolJSON `json:"pool"`
	Error         string   `json:"error,omitempty"`
}

type poolJSON struct {
	State    string `json:"state"`
	MaxConns int32  `json:"max_conns"`
	Total    int32  `json:"total_conns"`
	Idle     int32  `json:"idle_conns"`
	Acquired int32  `json:"acquired_conns"`
}

// health checks the database and reports on it.
func (c *cli) health(ctx context.Context, args []string) error {
	fs := c.flagSet("health")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	return c.withProvider(ctx, func(p *provider.Provider) error {
		r, herr := p.Health(ctx)
		h := healthJSON{
			Reachable: r.Reachable, LatencyMS: float64(r.Latency.Microseconds()) / 1000,
			ServerVersion: r.ServerVersion, InRecovery: r.InRecovery,
			Pool: poolJSON{State: r.State.String(), MaxConns: r.Pool.MaxConns, Total: r.Pool.TotalConns,
				Idle: r.Pool.IdleConns, Acquired: r.Pool.AcquiredConns},
		}
		var err error
		if herr != nil {
			err = &unreachableError{err: herr}
		} else if l, lerr := events.ReadLag(ctx, p.Pool()); lerr != nil {
			err = lerr
		} else {
			h.Migrated = true
			lj := newLagJSON(l)
			h.Outbox = &lj
		}
		if err != nil {
			h.Error = err.Error()
		}
		if c.json {
			if perr := c.printJSON(h); perr != nil {
				return perr
			}
		} else {
			pairs := [][2]string{
				{"reachable", strconv.FormatBool(h.Reachable)},
				{"latency", r.Latency.Round(time.Microsecond).String()},
				{"server", orDash(h.ServerVersion)},
				{"in recovery", strconv.FormatBool(h.InRecovery)},
				{"pool", fmt.Sprintf("%s, %d/%d connections (%d idle, %d acquired)", h.Pool.State, h.Pool.Total,
					h.Pool.MaxConns, h.Pool.Idle, h.Pool.Acquired)},
				{"migrated", strconv.FormatBool(h.Migrated)},
			}
			if h.Outbox != nil {
				pairs = append(pairs, [2]string{"outbox", fmt.Sprintf("%d pending (%d retrying), oldest %s, %d dead letter(s)",
					h.Outbox.Pending, h.Outbox.Retrying, time.Duration(h.Outbox.OldestSeconds*float64(time.Second)).Round(time.Millisecond),
					h.Outbox.DeadLetters)})
			}
			if perr := c.fields(pairs); perr != nil {
				return perr
			}
		}
		return err
	})
}
