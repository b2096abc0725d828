package liverecall

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorCodesAndMessages(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	cases := []struct {
		err          error
		code, msg    string
		errorMessage string
	}{
		{Errorf(EINVALID, "field %q: bad", "k"), EINVALID, `field "k": bad`, `field "k": bad`},
		{E("postgres.X", EUNAVAILABLE, cause), EUNAVAILABLE, "internal error", "postgres.X: dial tcp: refused"},
		{&Error{Op: "op", Code: ENOTFOUND, Message: "user 3 not found", Err: cause}, ENOTFOUND, "user 3 not found", "op: user 3 not found: dial tcp: refused"},
		{fmt.Errorf("wrapped: %w", Errorf(ECONFLICT, "exists")), ECONFLICT, "exists", "wrapped: exists"},
		{cause, EINTERNAL, "internal error", "dial tcp: refused"},
		{E("op", EINTERNAL, Errorf(EINVALID, "inner")), EINTERNAL, "inner", "op: inner"},
	}
	for _, c := range cases {
		if got := ErrorCode(c.err); got != c.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.code)
		}
		if got := ErrorMessage(c.err); got != c.msg {
			t.Errorf("ErrorMessage(%v) = %q, want %q", c.err, got, c.msg)
		}
		if got := c.err.Error(); got != c.errorMessage {
			t.Errorf("Error() = %q, want %q", got, c.errorMessage)
		}
	}
	if ErrorCode(nil) != "" || E("op", EINTERNAL, nil) != nil {
		t.Error("nil handling")
	}
}
