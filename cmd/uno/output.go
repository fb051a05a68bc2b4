package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// printJSON writes v as indented JSON.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under header, aligned in columns.
func (c *cli) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes name: value lines, aligned.
func (c *cli) fields(pairs [][2]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 0, 1, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// Payload encodings, as the JSON output names them.
const (
	encodingJSON   = "json"
	encodingText   = "text"
	encodingBase64 = "base64"
)

// payload is an event payload as the CLI shows it.
type payload struct {
	Encoding string
	Text     string          // the payload as text (base64 for binary)
	JSON     json.RawMessage // the payload itself when it is JSON
}

// decodePayload classifies b: JSON, else UTF-8 text, else binary (base64).
func decodePayload(b []byte) payload {
	if len(b) > 0 && json.Valid(b) {
		return payload{Encoding: encodingJSON, Text: string(b), JSON: json.RawMessage(b)}
	}
	if utf8.Valid(b) {
		return payload{Encoding: encodingText, Text: string(b)}
	}
	return payload{Encoding: encodingBase64, Text: base64.StdEncoding.EncodeToString(b)}
}

// value returns the payload for JSON output: itself when it is JSON, else a string.
func (p payload) value() any {
	if p.JSON != nil {
		return p.JSON
	}
	return p.Text
}

// short returns s on one line, cut to n runes.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// orDash returns s, or "-" when it is empty, for table cells.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
