package recommend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recall/recalltest"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

var t0 = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)

// world: streamers 1..10 have MF vectors (streamer i along axis i);
// streamers 1..6 are live, in categories c0..c2; user 7 points at 3, then
// 2, then 9 (offline). The parts are the real ones: live.State, the exact
// index recall is tested with, recall.Engine and rerank.
type world struct {
	state   *live.State
	ords    *lr.Ordinals
	idx     *recalltest.ExactIndex
	engine  *recall.Engine
	imps    *impLog
	reg     *prometheus.Registry
	weights rerank.Model
	ncf     recommend.NCF
}

type impLog struct {
	mu  sync.Mutex
	got [][]lr.Impression
}

func (l *impLog) Log(imps []lr.Impression) { l.mu.Lock(); l.got = append(l.got, imps); l.mu.Unlock() }

// scorers gives the world's current weights and NeuMF scorer.
type scorers struct{ w *world }

func (s scorers) Weights() rerank.Model { return s.w.weights }
func (s scorers) NCF() recommend.NCF    { return s.w.ncf }

func newWorld(t *testing.T, shownWindow time.Duration) (*world, *recommend.Service) {
	t.Helper()
	w := &world{ords: lr.NewOrdinals(), idx: recalltest.New(), imps: &impLog{}, reg: prometheus.NewRegistry(), weights: rerank.DefaultWeights()}
	now := func() time.Time { return t0 }
	w.state = live.New(live.Config{Ordinals: w.ords, Clock: now})
	w.idx.SetVersion(lr.ModelMF, "mf-1")
	for id := 1; id <= 10; id++ {
		v := make([]float32, 11)
		v[id] = 1
		w.idx.AddStreamer(lr.ModelMF, w.ords.Ordinal(lr.StreamerID(id)), v)
	}
	u := make([]float32, 11)
	u[3], u[2], u[9] = 1, 0.5, 0.9
	w.idx.AddUser(lr.ModelMF, 7, u)
	var evs []lr.Event
	for id := 1; id <= 6; id++ {
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(100 + id), Category: fmt.Sprint("c", id%3), V: 1})
	}
	w.state.Apply(evs)
	budgets := map[string]time.Duration{}
	for _, ch := range recall.Channels {
		budgets[ch] = 10 * time.Second
	}
	cfg := recall.Config{Now: now, Budget: 10 * time.Second, ChannelBudget: budgets, ShownWindow: shownWindow, ShownDisabled: shownWindow == 0}
	w.engine = recall.New(cfg, w.state, w.ords, w.idx, w.idx, nil, nil)
	w.engine.RefreshRankings()
	svc := recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords,
		Scorers: scorers{w}, Impressions: w.imps, Now: now, Registerer: w.reg})
	return w, svc
}

func ids(p *lr.Page) []lr.StreamerID {
	var out []lr.StreamerID
	for _, it := range p.Items {
		out = append(out, it.StreamerID)
	}
	return out
}

// Recommend, called directly, gives what POST /v1/recall gives over HTTP
// (api's tests): only live streamers, reranked, with the nearest first; the
// page is logged as impressions under its request id and counted in the
// stage and channel metrics.
func TestRecommendLiveStreamersReranked(t *testing.T) {
	w, svc := newWorld(t, 0)
	ctx := context.Background()
	page, err := svc.Recommend(ctx, lr.RecommendRequest{RequestID: "r1", User: 7, K: 5, Debug: true, Received: time.Now().Add(-time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 5 || page.RequestID != "r1" || page.ModelVersions["mf"] != "mf-1" {
		t.Fatalf("page %+v", page)
	}
	for i, it := range page.Items {
		if it.StreamerID > 6 || it.StreamID != lr.StreamID(100+it.StreamerID) {
			t.Fatalf("item %+v: offline, or the wrong stream", it)
		}
		if i > 0 && it.Score > page.Items[i-1].Score {
			t.Fatalf("items not in score order: %+v", page.Items)
		}
		if it.Debug == nil || len(it.Debug.Features) != rerank.NumFeatures || it.Debug.Live.StreamerID != it.StreamerID {
			t.Fatalf("debug item %+v", it)
		}
		// The reasons for first, largest first; then the reasons against.
		why := it.Debug.Why
		for j := 1; j < len(why); j++ {
			if a, b := why[j-1].Effect, why[j].Effect; (a < 0 && b > 0) || (a > 0 && b > a) || (a < 0 && b < a) {
				t.Fatalf("item %d's why %+v: not positive contributions first, largest first, then negative ones", it.StreamerID, why)
			}
		}
	}
	if why := page.Items[0].Debug.Why; len(why) < 2 || why[0].Feature != "mf_score" || why[len(why)-1].Feature != "log_stream_age_min" {
		t.Fatalf("top item's why %+v, want mf_score first and the stream's age (a negative contribution) last", why)
	}
	if got := ids(page)[:2]; !slices.Equal(got, []lr.StreamerID{3, 2}) {
		t.Fatalf("page starts %v, want 3, 2 (9 is nearer than 2 but offline)", got)
	}
	d := page.Debug
	if d == nil || len(d.Channels) != len(recall.Channels) || !d.UserKnown || d.RerankFailed != "" || d.TimingsMS["decode"] < 1 || d.TimingsMS["total"] < d.TimingsMS["decode"] {
		t.Fatalf("debug %+v", d)
	}
	if len(w.imps.got) != 1 || len(w.imps.got[0]) != 5 || w.imps.got[0][0].RequestID != "r1" || w.imps.got[0][4].Position != 4 ||
		len(w.imps.got[0][0].Features) != rerank.NumFeatures || w.imps.got[0][0].ModelVersions != "mf=mf-1" {
		t.Fatalf("impressions %+v", w.imps.got)
	}
	if n := testutil.CollectAndCount(w.reg, "liverecall_recall_stage_seconds"); n != 3 {
		t.Fatalf("%d stage series, want decode, recall, rerank", n)
	}
	if got := counter(t, w.reg, "liverecall_recall_channel_outcomes_total", "mf", "ok"); got != 1 {
		t.Fatalf("mf ok outcomes %v, want 1", got)
	}
	// A request without an id gets one; a bad one is refused by recall.
	page, err = svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 3})
	if err != nil || len(page.RequestID) != 24 || page.Debug != nil || page.Items[0].Debug != nil {
		t.Fatalf("page %+v %v", page, err)
	}
	if _, err := svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 0}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("k 0: %v", err)
	}
}

// counter returns the value of the counter name with these label values.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			if slices.Equal(vals, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// panicky is a NeuMF scorer that panics.
type panicky struct{}

func (panicky) Score(lr.UserID, lr.StreamerID) (float32, bool)       { panic("scorer exploded") }
func (panicky) ScoreOrdinals(lr.UserID, []uint32, []float32) bool    { panic("scorer exploded") }
func (p panicky) ForUser(lr.UserID, userstore.Row) recommend.UserNCF { return p }

// When rerank fails — weights that do not fit, or a panic inside it — the
// page is served in recall order, the failure counted and explained.
func TestRerankFailureServesRecallOrder(t *testing.T) {
	w, svc := newWorld(t, 0)
	ctx := context.Background()
	order := func() []lr.StreamerID {
		res, err := w.engine.Recall(ctx, recall.Request{User: 7, K: 3})
		if err != nil {
			t.Fatal(err)
		}
		var out []lr.StreamerID
		for _, c := range res.Candidates[:3] {
			out = append(out, c.StreamerID)
		}
		return out
	}()
	for i, breakIt := range []func(){
		func() { w.weights = rerank.Weights{Version: "broken", W: []float64{1}} },
		func() { w.weights, w.ncf = rerank.DefaultWeights(), panicky{} },
	} {
		breakIt()
		page, err := svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 3, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(page), order) || page.Debug.RerankFailed == "" {
			t.Fatalf("case %d: page %v (rerank_failed %q), want the recall order %v", i, ids(page), page.Debug.RerankFailed, order)
		}
		if got := counter(t, w.reg, "liverecall_rerank_failures_total"); got != float64(i+1) {
			t.Fatalf("case %d: %v failures counted", i, got)
		}
	}
}

// The pages Recommend serves are marked shown: with the shown window on, a
// user who comes back sees the streamers not shown yet first.
func TestRecommendMarksShown(t *testing.T) {
	_, svc := newWorld(t, 10*time.Minute)
	ctx := context.Background()
	first, err := svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 4})
	if err != nil {
		t.Fatal(err)
	}
	second, err := svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids(second)[:2] {
		if slices.Contains(ids(first), id) {
			t.Fatalf("second page %v leads with %d from the first page %v although 2 live streamers were not shown", ids(second), id, ids(first))
		}
	}
}

// RecallOrder serves the recall order unreranked (the quality benchmark's
// recall-only variants).
func TestRecallOrderConfig(t *testing.T) {
	w, _ := newWorld(t, 0)
	svc := recommend.New(recommend.Config{Recall: w.engine, RecallOrder: true, Now: func() time.Time { return t0 }})
	res, err := w.engine.Recall(context.Background(), recall.Request{User: 7, K: 6})
	if err != nil {
		t.Fatal(err)
	}
	var want []lr.StreamerID
	for _, c := range res.Candidates {
		want = append(want, c.StreamerID)
	}
	page, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: 7, K: 6})
	if err != nil || !slices.Equal(ids(page), want) {
		t.Fatalf("page %v %v, want the recall order %v", ids(page), err, want)
	}
}

// Neighbour queries answer from the index's vectors exactly, live only or
// all, a streamer's without itself.
func TestNeighborsExact(t *testing.T) {
	_, svc := newWorld(t, 0)
	ctx := context.Background()
	for _, c := range []struct {
		req  lr.NeighborsRequest
		want []lr.StreamerID
	}{
		{lr.NeighborsRequest{Model: lr.ModelMF, User: 7, K: 3, LiveOnly: true}, []lr.StreamerID{3, 2, 1}},
		{lr.NeighborsRequest{Model: lr.ModelMF, User: 7, K: 3}, []lr.StreamerID{3, 9, 2}},
		{lr.NeighborsRequest{Model: lr.ModelMF, Streamer: 3, K: 2}, []lr.StreamerID{1, 2}},
	} {
		ns, err := svc.Neighbors(ctx, c.req)
		if err != nil {
			t.Fatal(err)
		}
		var got []lr.StreamerID
		for _, n := range ns.Neighbors {
			got = append(got, n.StreamerID)
			if n.Live != (n.StreamerID <= 6) || (n.Features != nil) != n.Live {
				t.Fatalf("%+v: neighbour %+v", c.req, n)
			}
		}
		if !slices.Equal(got, c.want) || ns.Version != "mf-1" {
			t.Fatalf("%+v: %v (version %q), want %v", c.req, got, ns.Version, c.want)
		}
	}
	for _, c := range []struct {
		req  lr.NeighborsRequest
		code string
	}{
		{lr.NeighborsRequest{Model: lr.ModelMF, User: 999, K: 3}, lr.ENOTFOUND},
		{lr.NeighborsRequest{Model: lr.ModelMF, Streamer: 999, K: 3}, lr.ENOTFOUND},
		{lr.NeighborsRequest{Model: lr.ModelMF, User: 7, Streamer: 3, K: 3}, lr.EINVALID},
		{lr.NeighborsRequest{Model: lr.ModelMF, User: 7, K: 0}, lr.EINVALID},
	} {
		if _, err := svc.Neighbors(ctx, c.req); lr.ErrorCode(err) != c.code {
			t.Fatalf("%+v: %v, want %s", c.req, err, c.code)
		}
	}
}

// memStore serves one MF version from memory to an index.Manager.
type memStore struct {
	streamers, users []lr.Embedding
	dim              int
}

func (s *memStore) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	if kind != lr.ModelMF {
		return lr.ModelVersion{}, lr.Errorf(lr.ENOTFOUND, "no %s", kind)
	}
	return lr.ModelVersion{ID: 1, Kind: kind, Version: "mf-big", Dim: s.dim, Status: lr.StatusActive}, nil
}

func (s *memStore) side(side lr.EmbeddingSide) []lr.Embedding {
	if side == lr.SideUser {
		return s.users
	}
	return s.streamers
}

func (s *memStore) CountEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide) (int64, error) {
	return int64(len(s.side(side))), nil
}

func (s *memStore) StreamEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide, fn func(int64, []float32) error) error {
	for _, e := range s.side(side) {
		if err := fn(e.ID, e.Vec); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) SampleUserEmbeddings(ctx context.Context, id int64, n int) ([][]float32, error) {
	var out [][]float32
	for _, e := range s.users[:min(n, len(s.users))] {
		out = append(out, e.Vec)
	}
	return out, nil
}

// UserRows makes memStore the user store's source (userstore.Source).
func (s *memStore) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	for _, u := range users {
		for _, e := range s.users {
			if e.ID == u && slices.Contains(models, 1) {
				if err := fn(1, u, e.Vec, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Operators' neighbour queries scan in float32 even where recall's searches
// take the 8-bit scan (a live set of 1,024 or more on a CPU with AVX-512
// VNNI): the answer is the exact top k among the live streamers, and the
// real index.Manager counts only exact searches for them.
func TestNeighborsScanInFloat32(t *testing.T) {
	const n, nLive, dim, k = 3000, 1500, 16, 10
	rng := rand.New(rand.NewPCG(4, 4))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	store := &memStore{dim: dim}
	for i := 1; i <= n; i++ {
		store.streamers = append(store.streamers, lr.Embedding{ID: int64(i), Vec: vec()})
	}
	for u := 1; u <= 20; u++ {
		store.users = append(store.users, lr.Embedding{ID: int64(u), Vec: vec()})
	}
	ords, reg := lr.NewOrdinals(), prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := index.NewManager(index.Config{Store: store, Ordinals: ords, Kinds: []lr.ModelKind{lr.ModelMF}, Registerer: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: func() time.Time { return t0 }})
	liveIDs := map[lr.StreamerID]bool{}
	var evs []lr.Event
	for i, id := range rng.Perm(n)[:nLive] {
		sid := lr.StreamerID(id + 1)
		liveIDs[sid] = true
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", i), Type: lr.EventStreamStarted, TS: t0.Add(-time.Minute), StreamerID: sid, StreamID: lr.StreamID(i + 1), V: 1})
	}
	state.Apply(evs)
	users, err := userstore.New(userstore.Config{Source: store})
	if err != nil {
		t.Fatal(err)
	}
	svc := recommend.New(recommend.Config{Streams: state, Index: mgr, UserStore: users, Ordinals: ords})
	for u := 1; u <= 20; u++ {
		ns, err := svc.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: lr.UserID(u), K: k, LiveOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		q := store.users[u-1].Vec
		var want []index.Hit
		for _, e := range store.streamers {
			if liveIDs[lr.StreamerID(e.ID)] {
				want = append(want, index.ExactScan(q, e.Vec, dim, []uint32{uint32(e.ID)}, 1, nil)...)
			}
		}
		slices.SortStableFunc(want, func(a, b index.Hit) int {
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return int(a.Ord) - int(b.Ord)
		})
		for i, nb := range ns.Neighbors {
			if int64(nb.StreamerID) != int64(want[i].Ord) || nb.Score != want[i].Score || !nb.Live {
				t.Fatalf("user %d row %d: %+v, want streamer %d score %v (live)", u, i, nb, want[i].Ord, want[i].Score)
			}
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "liverecall_index_searches_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "strategy" {
						counts[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if counts[string(index.StrategyLiveInt8)] != 0 || counts[string(index.StrategyExact)] != 20 {
		t.Fatalf("searches by strategy %v, want 20 exact and no %s", counts, index.StrategyLiveInt8)
	}
}

// folded is a FoldedVectors of fixed vectors under one model id.
type folded struct {
	model int64
	vecs  map[lr.UserID]lr.FoldedVector
}

func (f folded) Folded(u lr.UserID, model int64) (lr.FoldedVector, bool) {
	v, ok := f.vecs[u]
	return v, ok && model == f.model
}

// A user's neighbour query under MF reports the nightly and the folded
// vector and searches with the folded one (what the MF channel recalls
// with); a user the version does not know is answered from a folded
// vector alone; NCF queries and other versions never get one.
func TestNeighborsShowFoldedVector(t *testing.T) {
	w, _ := newWorld(t, 0)
	model := w.idx.Model(lr.ModelMF).ID
	at := t0.Add(-time.Minute)
	v1 := make([]float32, 11)
	v1[5] = 1
	v2 := make([]float32, 11)
	v2[1] = 1
	fv := folded{model: model, vecs: map[lr.UserID]lr.FoldedVector{7: {Model: model, Vec: v1, At: at, Streams: 2, Watches: 3}, 999: {Model: model, Vec: v2, At: at, Streams: 1, Watches: 1}}}
	svc := recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords, Folded: fv})
	ctx := context.Background()
	ns, err := svc.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 7, K: 1, LiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if u := ns.User; u == nil || u.Searched != "folded" || u.Nightly == nil || u.Folded == nil || u.Folded.Watches != 3 || !u.Folded.At.Equal(at) {
		t.Fatalf("user 7: %+v", ns.User)
	}
	if ns.Neighbors[0].StreamerID != 5 {
		t.Fatalf("user 7's neighbours %+v, want streamer 5 (the folded vector's)", ns.Neighbors)
	}
	ns, err = svc.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 999, K: 1, LiveOnly: true})
	if err != nil || ns.User.Nightly != nil || ns.User.Searched != "folded" || ns.Neighbors[0].StreamerID != 1 {
		t.Fatalf("unknown user with a folded vector: %+v %v", ns, err)
	}
	// Without fold-in the nightly vector is searched.
	plain := recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords})
	ns, err = plain.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 7, K: 1, LiveOnly: true})
	if err != nil || ns.User.Searched != "nightly" || ns.User.Folded != nil || ns.Neighbors[0].StreamerID != 3 {
		t.Fatalf("without fold-in: %+v %v", ns, err)
	}
	// A folded vector of another version is not used.
	other := recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords,
		Folded: folded{model: model + 1, vecs: fv.vecs}})
	if _, err := other.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 999, K: 1}); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("a folded vector of another version answered: %v", err)
	}
}

// releasingLog is an ImpressionReleaser: it copies each page as it is
// logged, keeps the slice it was given, and hands the page back at once.
type releasingLog struct {
	copies, given [][]lr.Impression
}

func (l *releasingLog) Log(imps []lr.Impression) { panic("Log called on an ImpressionReleaser") }

func (l *releasingLog) LogThen(imps []lr.Impression, release func()) {
	c := slices.Clone(imps)
	for i := range c {
		c[i].Features = slices.Clone(c[i].Features)
	}
	l.copies, l.given = append(l.copies, c), append(l.given, imps)
	release()
}

// With an ImpressionReleaser the service hands each page's impressions to
// LogThen, gets them back (emptied of what points into the request) and
// builds later pages in them (a sync.Pool: when it keeps them): each
// page's impressions are still the page logged at the time.
func TestImpressionsHandedBackStayAsLogged(t *testing.T) {
	w, _ := newWorld(t, 0)
	log := &releasingLog{}
	svc := recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords,
		Scorers: scorers{w}, Impressions: log, Now: func() time.Time { return t0 }, Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	var pages []*lr.Page
	for i, ex := range [][]lr.StreamerID{nil, {3}, {3, 2}} {
		p, err := svc.Recommend(ctx, lr.RecommendRequest{RequestID: fmt.Sprint("r", i), User: 7, K: 4, Exclude: ex})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if len(log.copies) != 3 {
		t.Fatalf("%d pages logged, want 3", len(log.copies))
	}
	for i, p := range pages {
		imps := log.copies[i]
		if len(imps) != len(p.Items) || len(imps) == 0 {
			t.Fatalf("page %d: %d impressions of %d items", i, len(imps), len(p.Items))
		}
		for j, it := range p.Items {
			if imps[j].RequestID != p.RequestID || imps[j].StreamerID != it.StreamerID || imps[j].Position != j || len(imps[j].Features) != rerank.NumFeatures {
				t.Fatalf("page %d impression %d: %+v, want streamer %d at %d of request %s", i, j, imps[j], it.StreamerID, j, p.RequestID)
			}
		}
		for j, im := range log.given[i] {
			if im.RequestID != "" || im.Features != nil {
				t.Fatalf("page %d impression %d still holds %+v after it was handed back", i, j, im)
			}
		}
	}
}
