// Package faultproxy is a TCP proxy between a PostgreSQL client and server that
// understands the wire protocol's message framing (a type byte and an int32 length) and
// cuts connections at chosen protocol points: before the server sees a statement, after
// the server answered it but before the client gets the answer, after a number of rows,
// or at once. The fault-injection tests use it to put a transaction's connection in each
// of the states a real network or server failure can leave it in.
//
// A generic proxy such as toxiproxy sees bytes, not messages: it can delay or cut a
// stream, but not "right after COMMIT reached the server" or "before the client reads
// COMMIT's answer", which are the cases where a commit's outcome is unknown to the
// client. This one parses just enough of the protocol for that and has no dependencies.
//
// It is for tests: it handles the protocol's plain-text form only (a client that
// negotiates TLS is passed through byte for byte, without fault points).
package faultproxy
