package redact

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorHidesSecretsAndUnwraps(t *testing.T) {
	base := errors.New("connect postgres://app:s3cr3t@db failed")
	err := fmt.Errorf("wrapped: %w", base)
	red := Error(err, "s3cr3t", "")
	if got, want := red.Error(), "wrapped: connect postgres://app:xxxxx@db failed"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(red, base) {
		t.Fatal("the redacted error does not unwrap to the original")
	}
	if Error(err, "absent") != err {
		t.Fatal("an error without the secret should come back as is")
	}
	if Error(nil, "s3cr3t") != nil {
		t.Fatal("nil should stay nil")
	}
}

func TestStringLeavesShortSecrets(t *testing.T) {
	if got := String("a password ab", "ab"); got != "a password ab" {
		t.Fatalf("a two-byte secret was replaced: %q", got)
	}
	if got := String("pw=hunter2 hunter2", "hunter2"); got != "pw=xxxxx xxxxx" {
		t.Fatalf("String = %q", got)
	}
}
