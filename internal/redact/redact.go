package redact

import "strings"

// Placeholder replaces every occurrence of a secret.
const Placeholder = "xxxxx"

// minSecretLen is the shortest secret that is replaced: hiding a one- or two-byte
// secret would garble every message without protecting anything.
const minSecretLen = 3

// String returns s with every occurrence of each secret replaced by [Placeholder].
func String(s string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) >= minSecretLen {
			s = strings.ReplaceAll(s, secret, Placeholder)
		}
	}
	return s
}

// Error returns err with every occurrence of each secret removed from its message. The
// returned error unwraps to err, so errors.Is and errors.As keep working; err itself is
// returned when its message holds no secret.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := String(msg, secrets...)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError is an error whose message has had secrets removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
