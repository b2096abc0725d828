package liverecall

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. They are translated to transport status codes in exactly one
// place per transport (api/ for HTTP, cmd/ for exit codes).
const (
	EINVALID      = "invalid"      // the caller sent something malformed or out of range
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	ECONFLICT     = "conflict"     // the request conflicts with current state
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	EUNAVAILABLE  = "unavailable"  // a dependency is down or not ready yet
	EINTERNAL     = "internal"     // a bug or an unexpected failure; details are logged, not returned
)

// Error is the one error type that carries a code across package boundaries.
// Message is safe to show to a client; Err (the cause) is for logs only.
type Error struct {
	Code    string
	Message string
	Op      string // the operation that failed, e.g. "postgres.ActivateModel"
	Err     error
}

func (e *Error) Error() string {
	parts := make([]string, 0, 3)
	for _, p := range []string{e.Op, e.Message} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted, client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// E wraps err with an operation and a code. A nil err gives nil.
func E(op, code string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Code: code, Err: err}
}

// ErrorCode returns the code of the outermost *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the Message of the
// outermost *Error that has one, or "internal error" when there is none.
func ErrorMessage(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return "internal error"
	}
	if e.Message != "" {
		return e.Message
	}
	return ErrorMessage(e.Err)
}
