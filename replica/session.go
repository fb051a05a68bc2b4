package replica

import (
	"context"
	"sync"
)

// Session is a logical session of a client (a user, a request chain) whose reads must
// see its own writes: it remembers the WAL position of the session's last commit, and a
// read of the session runs on a replica only once that replica has replayed it. Carry it
// in a context with [WithSession], or across requests as its [Session.Token]. It is safe
// for concurrent use.
type Session struct {
	mu          sync.Mutex
	pos         LSN
	primaryOnly bool // a commit's position could not be learnt: read on the primary
}

// NewSession returns a session with no commit yet: its reads may run on any replica
// within the staleness bound.
func NewSession() *Session { return &Session{} }

// ResumeSession returns a session that must see the commits up to token, a
// [Session.Token] of an earlier session (another request of the same client). An empty
// token gives a new session.
func ResumeSession(token string) (*Session, error) {
	if token == "" {
		return NewSession(), nil
	}
	if token == tokenPrimary {
		return &Session{primaryOnly: true}, nil
	}
	pos, err := ParseLSN(token)
	if err != nil {
		return nil, err
	}
	return &Session{pos: pos}, nil
}

// tokenPrimary is the token of a session whose reads must run on the primary.
const tokenPrimary = "primary"

// Token returns the session's position as text, for a client to send back with its next
// request (a cookie, a header), where [ResumeSession] turns it into a session again; ""
// when the session committed nothing.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.primaryOnly:
		return tokenPrimary
	case s.pos == 0:
		return ""
	}
	return s.pos.String()
}

// Position returns the WAL position a replica must have replayed for the session's
// reads, and whether only the primary will do (a commit's position was not learnt).
func (s *Session) Position() (pos LSN, primaryOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos, s.primaryOnly
}

// advance records a commit that a replica holds once it has replayed up to pos.
func (s *Session) advance(pos LSN) {
	s.mu.Lock()
	s.pos = max(s.pos, pos)
	s.mu.Unlock()
}

// requirePrimary makes the session read on the primary from now on.
func (s *Session) requirePrimary() {
	s.mu.Lock()
	s.primaryOnly = true
	s.mu.Unlock()
}

type sessionKey struct{}

// WithSession returns a context that carries s: the Dos of [Set] with it record their
// commits in s, and its reads wait for them.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session ctx carries, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}
