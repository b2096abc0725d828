package recommend

import (
	"context"
	"fmt"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/userstore"
)

// MaxNeighbors bounds NeighborsRequest.K.
const MaxNeighbors = 1000

// Neighbors answers an operator's neighbour query: the K streamers whose
// vectors under req.Model have the highest dot product with the user's
// vector (what the user would be recommended) or with the streamer's (the
// streamer itself left out), live ones only or all, found by an exact
// float32 scan (Vectors.SearchPrecise: what operators see is the exact
// answer, never the 8-bit scan recall may use). Each row says whether the
// streamer is live, and a live one carries its features. lr.EINVALID for a
// bad request, lr.ENOTFOUND when the user or streamer has no vector,
// nightly or (MF) folded in from the session (Config.Folded: a user's query
// then searches with the folded vector, as the MF channel recalls, and
// reports both in Neighbors.User),
// lr.EUNAVAILABLE when no index of the model is loaded or the user store
// (the user's vector is read from it, waiting up to Config.UserTimeout)
// fails. Every lookup is pinned to the version serving at the start.
func (s *Service) Neighbors(ctx context.Context, req lr.NeighborsRequest) (*lr.Neighbors, error) {
	if (req.User == 0) == (req.Streamer == 0) {
		return nil, lr.Errorf(lr.EINVALID, "give exactly one of user_id and streamer_id")
	}
	if req.K < 1 || req.K > MaxNeighbors {
		return nil, lr.Errorf(lr.EINVALID, "k must be between 1 and %d, got %d", MaxNeighbors, req.K)
	}
	kind := req.Model
	mv := s.cfg.Index.Model(kind)
	if mv.ID == 0 {
		return nil, lr.Errorf(lr.EUNAVAILABLE, "no %s index loaded", kind)
	}
	var q []float32
	self, hasSelf := uint32(0), false
	var user *lr.NeighborsUser
	if req.User != 0 {
		nightly, err := s.userVector(ctx, req.User, kind, mv.ID)
		if err != nil {
			return nil, err
		}
		user = &lr.NeighborsUser{Nightly: nightly, Searched: "nightly"}
		if kind == lr.ModelMF && s.cfg.Folded != nil {
			if fv, ok := s.cfg.Folded.Folded(req.User, mv.ID); ok {
				user.Folded, user.Searched = &fv, "folded"
			}
		}
		if nightly == nil && user.Folded == nil {
			return nil, lr.Errorf(lr.ENOTFOUND, "user %d has no %s embedding", req.User, kind)
		}
		q = nightly
		if user.Folded != nil {
			q = user.Folded.Vec
		}
	} else {
		ord, ok := s.cfg.Ordinals.Lookup(req.Streamer)
		var vec []float32
		if ok {
			vec, ok = s.cfg.Index.StreamerVector(kind, mv.ID, ord)
		}
		if !ok {
			return nil, lr.Errorf(lr.ENOTFOUND, "streamer %d has no %s embedding", req.Streamer, kind)
		}
		q, self, hasSelf = vec, ord, true
	}
	var allowed recall.Allowed // nil: every streamer of the version
	snap := s.cfg.Streams.Snapshot()
	if req.LiveOnly {
		allowed = snap
	}
	want := req.K
	if hasSelf {
		want++
	}
	out := &lr.Neighbors{Version: mv.Version, Neighbors: []lr.Neighbor{}, User: user}
	hits, err := s.cfg.Index.SearchPrecise(ctx, kind, mv.ID, q, want, allowed)
	if err != nil {
		return nil, err
	}
	for _, h := range hits {
		if hasSelf && h.Ord == self {
			continue
		}
		if len(out.Neighbors) == req.K {
			break
		}
		id, _ := s.cfg.Ordinals.ID(h.Ord)
		n := lr.Neighbor{StreamerID: id, Score: h.Score, Live: snap.Contains(h.Ord)}
		if f, ok := s.cfg.Streams.Features(h.Ord); ok {
			lf := lr.LiveFeatures(f)
			n.Features = &lf
		}
		out.Neighbors = append(out.Neighbors, n)
	}
	return out, nil
}

// userVector reads u's vector of kind under version model from the user
// store (nil when the version has none for u), pinned as a request pins it
// (with the other kind's serving version, so it shares the cache entry
// requests use).
func (s *Service) userVector(ctx context.Context, u lr.UserID, kind lr.ModelKind, model int64) ([]float32, error) {
	if s.cfg.UserStore == nil {
		return nil, lr.Errorf(lr.EUNAVAILABLE, "no user store configured")
	}
	v := userstore.Versions{MF: s.cfg.Index.Model(lr.ModelMF).ID, NCF: s.cfg.Index.Model(lr.ModelNCF).ID}
	if kind == lr.ModelMF {
		v.MF = model
	} else {
		v.NCF = model
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UserTimeout)
	defer cancel()
	row, err := s.cfg.UserStore.Fetch(ctx, u, v)
	if err != nil {
		return nil, &lr.Error{Code: lr.EUNAVAILABLE, Op: "recommend.Neighbors",
			Message: fmt.Sprintf("%s did not give user %d's vectors within %s", s.cfg.UserStoreName, u, s.cfg.UserTimeout), Err: err}
	}
	return row.Vector(kind), nil
}
