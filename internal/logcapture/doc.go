// Package logcapture collects log output in memory for tests that check what uno logs
// (and that it never logs a password).
package logcapture
