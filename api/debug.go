package api

import (
	"crypto/subtle"
	"embed"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	lr "github.com/liverecall/liverecall"
)

//go:embed static/debug.html static/openapi.json
var staticFS embed.FS

// Neighbor is one row of GET /v1/debug/neighbors.
type Neighbor struct {
	StreamerID int64         `json:"streamer_id"`
	Score      float32       `json:"score"`
	Live       bool          `json:"live"`
	Features   *LiveFeatures `json:"features,omitempty"` // when live
}

// NeighborsResponse is the body of GET /v1/debug/neighbors.
type NeighborsResponse struct {
	Query     string     `json:"query"` // "user 42" or "streamer 7"
	Model     string     `json:"model"`
	Version   string     `json:"version"`
	LiveOnly  bool       `json:"live_only"`
	Neighbors []Neighbor `json:"neighbors"`
	// User, for a user's query, holds the user's vectors.
	User *NeighborsUser `json:"user,omitempty"`
}

// NeighborsUser is the user's vectors under the version searched: the
// nightly one (null for a user the version does not know) and, for MF,
// the one folded in from the user's recent watches, if any. Searched says
// which the neighbours are of ("folded" when there is one: what the MF
// channel recalls with; else "nightly").
type NeighborsUser struct {
	Searched string        `json:"searched"`
	Nightly  []float32     `json:"nightly"`
	Folded   *FoldedVector `json:"folded,omitempty"`
}

// FoldedVector is a user's MF vector folded in from their recent watches.
type FoldedVector struct {
	Vector    []float32 `json:"vector"`
	FoldedAt  time.Time `json:"folded_at"`
	Streamers int       `json:"streamers"`  // streamers watched in the window
	Watches   int       `json:"watches"`    // watch sessions in the window
	ExpiresAt time.Time `json:"expires_at"` // when its newest watch leaves the window
}

// RegisterDebug adds GET /v1/debug/neighbors and the /debug page, the
// operator console (its data routes: RegisterAdmin, RegisterConsole). The
// neighbours endpoint requires the token unless open is true; the page is
// open (it holds no data and asks for the token).
func (s *Server) RegisterDebug(r Recommender, token string, open bool) {
	var mw []echo.MiddlewareFunc
	if !open {
		mw = append(mw, requireToken(token))
	}
	s.e.GET("/v1/debug/neighbors", func(c echo.Context) error { return neighbors(c, r) }, mw...)
	page := func(c echo.Context) error {
		b, err := staticFS.ReadFile("static/debug.html")
		if err != nil {
			return err
		}
		c.Response().Header().Set("Content-Security-Policy", pageCSP(b))
		return c.HTMLBlob(http.StatusOK, b)
	}
	// The page (the operator console) itself holds no data; it calls the
	// admin and neighbours endpoints with the token the operator types in.
	// Its old address, /debug/, redirects to it (a browser keeps the
	// fragment that carries a query).
	s.e.GET("/debug", page)
	s.e.GET("/debug/", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/debug") })
}

func neighbors(c echo.Context, r Recommender) error {
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
	req := lr.NeighborsRequest{Model: kind, K: 20, LiveOnly: true}
	if v := qp.Get("k"); v != "" {
		if req.K, err = strconv.Atoi(v); err != nil || req.K < 1 || req.K > MaxK {
			return lr.Errorf(lr.EINVALID, "query parameter \"k\": must be an integer between 1 and %d", MaxK)
		}
	}
	switch qp.Get("live") {
	case "", "only":
	case "all":
		req.LiveOnly = false
	default:
		return lr.Errorf(lr.EINVALID, "query parameter \"live\": must be only or all")
	}
	uid, sid := qp.Get("user_id"), qp.Get("streamer_id")
	if (uid == "") == (sid == "") {
		return lr.Errorf(lr.EINVALID, "give exactly one of user_id and streamer_id")
	}
	resp := NeighborsResponse{Model: model, LiveOnly: req.LiveOnly, Neighbors: []Neighbor{}}
	if uid != "" {
		id, err := strconv.ParseInt(uid, 10, 64)
		if err != nil || id <= 0 {
			return lr.Errorf(lr.EINVALID, "query parameter \"user_id\": must be a positive integer")
		}
		req.User, resp.Query = lr.UserID(id), "user "+uid
	} else {
		id, err := strconv.ParseInt(sid, 10, 64)
		if err != nil || id <= 0 {
			return lr.Errorf(lr.EINVALID, "query parameter \"streamer_id\": must be a positive integer")
		}
		req.Streamer, resp.Query = lr.StreamerID(id), "streamer "+sid
	}
	ns, err := r.Neighbors(c.Request().Context(), req)
	if err != nil {
		return err
	}
	resp.Version = ns.Version
	if u := ns.User; u != nil {
		resp.User = &NeighborsUser{Searched: u.Searched, Nightly: u.Nightly}
		if f := u.Folded; f != nil {
			resp.User.Folded = &FoldedVector{Vector: f.Vec, FoldedAt: f.At.UTC(), Streamers: f.Streams, Watches: f.Watches, ExpiresAt: f.Expires.UTC()}
		}
	}
	for _, n := range ns.Neighbors {
		row := Neighbor{StreamerID: int64(n.StreamerID), Score: n.Score, Live: n.Live}
		if n.Features != nil {
			lf := liveFeatures(*n.Features)
			row.Features = &lf
		}
		resp.Neighbors = append(resp.Neighbors, row)
	}
	return c.JSON(http.StatusOK, resp)
}

// requireToken checks "Authorization: Bearer <token>" in constant time. An
// empty configured token refuses every request: protected routes are never
// open by accident.
func requireToken(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := checkToken(c, token, ""); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// checkToken checks c's "Authorization: Bearer <token>" in constant time;
// its error (EUNAUTHORIZED) starts with what, if given, to say what needs
// the token.
func checkToken(c echo.Context, token, what string) error {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	got, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || got == "" {
		return lr.Errorf(lr.EUNAUTHORIZED, "%smissing bearer token", what)
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return lr.Errorf(lr.EUNAUTHORIZED, "%swrong bearer token", what)
	}
	return nil
}
