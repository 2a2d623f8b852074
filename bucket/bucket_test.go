package bucket

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	good := []string{"a", "log/00000000000000000001", "chunks/x-y.z", "a/b/c", "ü/ñ", strings.Repeat("k", MaxKeyLen)}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	bad := []string{"", "/abs", "a/", "a//b", "./a", "a/./b", "../x", "a/../../x", "a\x00b", `a\b`, "\xff", strings.Repeat("k", MaxKeyLen+1)}
	for _, k := range bad {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if err := ValidatePrefix("log/"); err != nil {
		t.Errorf("prefix log/: %v", err)
	}
	if err := ValidatePrefix("../"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("prefix ../: %v", err)
	}
}

func TestOpErrorWrapsSentinels(t *testing.T) {
	err := error(&OpError{Bucket: "file:///x", Op: "get", Key: "k", Err: ErrNotFound})
	if !IsNotFound(err) || IsPrecondition(err) {
		t.Fatal("OpError does not unwrap to its sentinel")
	}
	if got := err.Error(); !strings.Contains(got, "file:///x") || !strings.Contains(got, `"k"`) || !strings.Contains(got, "get") {
		t.Fatalf("error text %q does not say where it failed", got)
	}
}
