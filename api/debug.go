package api

import (
	"crypto/subtle"
	"embed"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
)

//go:embed static/debug.html static/openapi.json
var staticFS embed.FS

// Neighbor is one row of GET /v1/debug/neighbors.
type Neighbor struct {
	StreamerID int64          `json:"streamer_id"`
	Score      float32        `json:"score"`
	Live       bool           `json:"live"`
	Features   *live.Features `json:"features,omitempty"`
}

// NeighborsResponse is the body of GET /v1/debug/neighbors.
type NeighborsResponse struct {
	Query     string     `json:"query"` // "user 42" or "streamer 7"
	Model     string     `json:"model"`
	Version   string     `json:"version"`
	LiveOnly  bool       `json:"live_only"`
	Neighbors []Neighbor `json:"neighbors"`
}

// everyone accepts every ordinal given so far.
type everyone struct{ n uint64 }

func (e everyone) Contains(uint32) bool   { return true }
func (e everyone) GetCardinality() uint64 { return e.n }

// RegisterDebug adds GET /v1/debug/neighbors and the /debug/ page. With a
// non-empty token both require it unless open is true.
func (s *Server) RegisterDebug(d *RecallDeps, token string, open bool) {
	var mw []echo.MiddlewareFunc
	if !open {
		mw = append(mw, requireToken(token))
	}
	s.e.GET("/v1/debug/neighbors", func(c echo.Context) error { return neighbors(c, d) }, mw...)
	page := func(c echo.Context) error {
		b, err := staticFS.ReadFile("static/debug.html")
		if err != nil {
			return err
		}
		c.Response().Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'")
		return c.HTMLBlob(http.StatusOK, b)
	}
	// The page itself holds no data; it calls the neighbours endpoint with
	// the token the operator types in.
	s.e.GET("/debug/", page)
	s.e.GET("/debug", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/debug/") })
}

func neighbors(c echo.Context, d *RecallDeps) error {
	qp := c.QueryParams()
	for name := range qp {
		switch name {
		case "user_id", "streamer_id", "model", "k", "live":
		default:
			return lr.Errorf(lr.EINVALID, "unknown query parameter %q", name)
		}
	}
	model := qp.Get("model")
	if model == "" {
		model = "mf"
	}
	kind, err := lr.ParseModelKind(model)
	if err != nil {
		return err
	}
	k := 20
	if v := qp.Get("k"); v != "" {
		if k, err = strconv.Atoi(v); err != nil || k < 1 || k > MaxK {
			return lr.Errorf(lr.EINVALID, "query parameter \"k\": must be an integer between 1 and %d", MaxK)
		}
	}
	liveOnly := true
	switch qp.Get("live") {
	case "", "only":
	case "all":
		liveOnly = false
	default:
		return lr.Errorf(lr.EINVALID, "query parameter \"live\": must be only or all")
	}
	uid, sid := qp.Get("user_id"), qp.Get("streamer_id")
	if (uid == "") == (sid == "") {
		return lr.Errorf(lr.EINVALID, "give exactly one of user_id and streamer_id")
	}
	var allowed recall.Allowed = everyone{uint64(d.Ordinals.Len())}
	if liveOnly {
		allowed = d.State.Snapshot()
	}
	resp := NeighborsResponse{Model: model, Version: d.Index.Version(kind), LiveOnly: liveOnly, Neighbors: []Neighbor{}}
	var q []float32
	self := uint32(0)
	hasSelf := false
	if uid != "" {
		id, err := strconv.ParseInt(uid, 10, 64)
		if err != nil || id <= 0 {
			return lr.Errorf(lr.EINVALID, "query parameter \"user_id\": must be a positive integer")
		}
		vec, ok := d.Index.UserVector(kind, lr.UserID(id))
		if !ok {
			return lr.Errorf(lr.ENOTFOUND, "user %d has no %s embedding", id, model)
		}
		q, resp.Query = vec, "user "+uid
	} else {
		id, err := strconv.ParseInt(sid, 10, 64)
		if err != nil || id <= 0 {
			return lr.Errorf(lr.EINVALID, "query parameter \"streamer_id\": must be a positive integer")
		}
		ord, ok := d.Ordinals.Lookup(lr.StreamerID(id))
		var vec []float32
		if ok {
			vec, ok = d.Index.StreamerVector(kind, ord)
		}
		if !ok {
			return lr.Errorf(lr.ENOTFOUND, "streamer %d has no %s embedding", id, model)
		}
		q, resp.Query, self, hasSelf = vec, "streamer "+sid, ord, true
	}
	want := k
	if hasSelf {
		want++
	}
	hits, err := d.Index.Search(c.Request().Context(), kind, q, want, allowed)
	if err != nil {
		return err
	}
	snap := d.State.Snapshot()
	for _, h := range hits {
		if hasSelf && h.Ord == self {
			continue
		}
		if len(resp.Neighbors) == k {
			break
		}
		id, _ := d.Ordinals.ID(h.Ord)
		n := Neighbor{StreamerID: int64(id), Score: h.Score, Live: snap.Contains(h.Ord)}
		if f, ok := d.State.Features(h.Ord); ok {
			n.Features = &f
		}
		resp.Neighbors = append(resp.Neighbors, n)
	}
	return c.JSON(http.StatusOK, resp)
}

// requireToken checks "Authorization: Bearer <token>" in constant time. An
// empty configured token refuses every request: protected routes are never
// open by accident.
func requireToken(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			got, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || got == "" {
				return lr.Errorf(lr.EUNAUTHORIZED, "missing bearer token")
			}
			if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				return lr.Errorf(lr.EUNAUTHORIZED, "wrong bearer token")
			}
			return next(c)
		}
	}
}
