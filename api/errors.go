package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	lr "github.com/liverecall/liverecall"
)

// Error codes of the HTTP API that are not codes of the domain (lr.EINVALID
// and the others): they name problems only HTTP has.
const (
	// CodeMethodNotAllowed: the path exists, but not for this method (405,
	// with an Allow header).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeUnsupportedMediaType: a request body sent as something other
	// than application/json in UTF-8 (415).
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// ErrorCodes is every code an error body can carry: the documented set
// (openapi.json's Error schema enumerates exactly these).
var ErrorCodes = []string{
	lr.EINVALID, lr.EUNAUTHORIZED, lr.ENOTFOUND, CodeMethodNotAllowed, lr.ECONFLICT, CodeUnsupportedMediaType,
	lr.EUNAVAILABLE, lr.EINTERNAL,
}

// codeOfStatus is the error code of a response of the given status that
// was decided by HTTP machinery (the router, net/http) rather than by a
// coded error: one of ErrorCodes. Client errors without a code of their own
// (a request too large, a malformed header, an HTTP version or transfer
// coding the server does not take) are invalid.
func codeOfStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return lr.EUNAUTHORIZED
	case http.StatusNotFound:
		return lr.ENOTFOUND
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return lr.ECONFLICT
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMediaType
	case http.StatusServiceUnavailable:
		return lr.EUNAVAILABLE
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return lr.EINVALID
	}
	if status >= 400 && status < 500 {
		return lr.EINVALID
	}
	return lr.EINTERNAL
}

// routerMessage words the router's own errors (no route for the path, or
// not for the method) for the client.
func routerMessage(c echo.Context, he *echo.HTTPError) string {
	r := c.Request()
	switch he.Code {
	case http.StatusNotFound:
		return "no route " + r.Method + " " + r.URL.Path
	case http.StatusMethodNotAllowed:
		msg := "method " + r.Method + " not allowed on " + r.URL.Path
		if allow := c.Response().Header().Get(echo.HeaderAllow); allow != "" {
			msg += "; allowed: " + allow
		}
		return msg
	}
	if m, ok := he.Message.(string); ok {
		return m
	}
	return http.StatusText(he.Code)
}
