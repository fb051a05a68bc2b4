package provider

import (
	"errors"
	"strings"
)

// ErrInvalidConfig is matched (errors.Is) by every [ValidationErrors].
var ErrInvalidConfig = errors.New("provider: invalid config")

// FieldError is one problem of a configuration.
type FieldError struct {
	// Path names the setting at fault: a Config key such as "pool_size", the key a map
	// used ("db_port"), an environment variable ("PGPORT"), or "url" for the whole
	// connection string.
	Path string
	// Message says what is wrong, and never contains the password.
	Message string
}

// Error returns "path: message".
func (e *FieldError) Error() string { return e.Path + ": " + e.Message }

// ValidationErrors lists every problem found in a configuration. Find it with
// errors.As; each element is also reachable with errors.As(err, &fieldErr).
type ValidationErrors []*FieldError

// Error lists every problem, separated by semicolons.
func (e ValidationErrors) Error() string {
	var b strings.Builder
	b.WriteString("provider: invalid config: ")
	for i, fe := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Is reports whether target is [ErrInvalidConfig].
func (e ValidationErrors) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the FieldErrors.
func (e ValidationErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, fe := range e {
		errs[i] = fe
	}
	return errs
}

// Field returns the problem reported for path, or nil.
func (e ValidationErrors) Field(path string) *FieldError {
	for _, fe := range e {
		if fe.Path == path {
			return fe
		}
	}
	return nil
}
