// Package redact removes secrets (passwords) from error messages and strings, so that
// uno never prints them in errors, logs or formatted values.
package redact
