package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Admin is what the admin routes need from the service.
type Admin interface {
	// Reload rebuilds the indexes from the active model versions now and
	// returns a summary; it blocks until done or ctx ends.
	Reload(ctx context.Context) (any, error)
	// Status describes index versions, live count, consumer lag and the last
	// reload.
	Status() any
}

// RegisterAdmin adds POST /v1/admin/reload and GET /v1/admin/status behind
// the bearer token.
func (s *Server) RegisterAdmin(a Admin, token string) {
	auth := requireToken(token)
	s.e.POST("/v1/admin/reload", func(c echo.Context) error {
		out, err := a.Reload(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}, auth)
	s.e.GET("/v1/admin/status", func(c echo.Context) error { return c.JSON(http.StatusOK, a.Status()) }, auth)
}
