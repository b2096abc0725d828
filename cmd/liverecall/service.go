package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

var (
	sAdminToken       = defSetting(setting{"admin-token", "LIVERECALL_ADMIN_TOKEN", "", "bearer token for /v1/admin/* and the debug routes (empty: those routes refuse every request)"})
	sDebugOpen        = defSetting(setting{"debug-open", "LIVERECALL_DEBUG_OPEN", "false", "serve /v1/debug/neighbors without the token"})
	sLookback         = defSetting(setting{"live-lookback", "LIVERECALL_LIVE_LOOKBACK", "1h", "how far back the live view replays events at start"})
	sExpiry           = defSetting(setting{"live-expiry", "LIVERECALL_LIVE_EXPIRY", "10m", "a stream with no event for this long is ended"})
	sImpressionsTopic = defSetting(setting{"impressions-topic", "LIVERECALL_IMPRESSIONS_TOPIC", events.DefaultImpressionTopic, "topic recall responses are logged to"})
	sRecallBudget     = defSetting(setting{"recall-budget", "LIVERECALL_RECALL_BUDGET", "8ms", "time budget of the recall stage of a request"})
	sShownWindow      = defSetting(setting{"shown-window", "LIVERECALL_SHOWN_WINDOW", "10m", "streamers shown to a user (by any replica) within this window are shown again only to fill a page the others cannot"})
	sUnknownShare     = defSetting(setting{"unknown-share", "LIVERECALL_UNKNOWN_SHARE", "0.2", "most of a page (share of k, at least 1 item) streamers unknown to the serving models may take; 0: none, 1: no cap"})
	sRefreshEvery     = defSetting(setting{"refresh-every", "LIVERECALL_REFRESH_EVERY", "30s", "how often bans, blocks and reranker weights are reloaded from Postgres"})
	sSnapshotDir      = defSetting(setting{"index-snapshot-dir", "LIVERECALL_INDEX_SNAPSHOT_DIR", "", "directory for index snapshots, loaded at start when they match the active version (empty: none)"})
	sRecallFloor      = defSetting(setting{"index-recall-floor", "LIVERECALL_INDEX_RECALL_FLOOR", "0.9", "a rebuilt index whose self-check recall@10 is below this is refused"})
	sCheckEvery       = defSetting(setting{"index-check-every", "LIVERECALL_INDEX_CHECK_EVERY", "1m", "how often the active model versions are checked (besides LISTEN/NOTIFY)"})
	sExactThreshold   = defSetting(setting{"index-exact-threshold", "LIVERECALL_INDEX_EXACT_THRESHOLD", strconv.Itoa(index.DefaultExactThreshold), "allowed sets up to this size (or under 10% of the index) are scanned exactly instead of searched in the graph"})
	sEfSearch         = defSetting(setting{"index-ef-search", "LIVERECALL_INDEX_EF_SEARCH", "64", "HNSW beam width per query"})
)

// indexConfig is the index part of serviceConfig.
type indexConfig struct {
	snapshotDir    string
	recallFloor    float64
	checkEvery     time.Duration
	exactThreshold int
	efSearch       int
}

// serviceConfig is everything serve (and dev) read.
type serviceConfig struct {
	serveConfig
	brokers          []string
	topics           []string
	deadLetterTopic  string
	impressionsTopic string
	adminToken       string
	debugOpen        bool
	lookback         time.Duration
	expiry           time.Duration
	recallBudget     time.Duration
	shownWindow      time.Duration
	unknownShare     float64 // 0..1, as the flag (recall.Config.UnknownShare takes 0 as its default)
	refreshEvery     time.Duration
	index            indexConfig
}

// staleAfter: a live view further behind than this is reported in /readyz.
const staleAfter = 15 * time.Second

// service is the running server: the parts and how they are wired.
type service struct {
	cfg       serviceConfig
	app       *App
	db        *postgres.DB
	reg       *prometheus.Registry
	ords      *lr.Ordinals
	state     *live.State
	consumer  *events.LiveConsumer
	idx       *index.Manager
	integrity *recall.IntegrityCache
	engine    *recall.Engine
	imps      *events.ImpressionProducer
	shown     *events.ShownConsumer // the other replicas' pages, into engine's shown log
	http      *api.Server
	weights   atomic.Pointer[rerank.Weights]
	ncf       atomic.Pointer[ncfScorer]
	started   time.Time
	// life ends when the service starts to shut down (set by run before it
	// serves): long admin operations end with it instead of holding the
	// shutdown until its timeout.
	life context.Context
}

// errShuttingDown is the cause an in-flight reload is cancelled with when
// the service shuts down.
var errShuttingDown = lr.Errorf(lr.EUNAVAILABLE, "the service is shutting down: the reload was cancelled and the serving indexes are kept; retry on another replica")

// dbPingTimeout bounds the database check of /readyz and of an admin reload.
const dbPingTimeout = 2 * time.Second

// ncfScorer is the full NeuMF scorer of one NCF model version, for rerank.
type ncfScorer struct {
	version string
	s       *embed.IDScorer
}

// Rank scores all of a request's candidates in one call through it.
var _ rerank.NCFOrdinalScorer = (*ncfScorer)(nil)

func (n *ncfScorer) Score(u lr.UserID, s lr.StreamerID) (float32, bool) {
	return n.s.Score(int64(u), int64(s))
}

// ScoreOrdinals scores a request's candidates in one pass, by their
// ordinals, through the table loadNCFScorer built (rerank.NCFOrdinalScorer).
func (n *ncfScorer) ScoreOrdinals(u lr.UserID, ords []uint32, out []float32) bool {
	return n.s.ScoreOrdinals(int64(u), ords, out)
}

// ncfScorer returns the NeuMF scorer of the NCF version the index serves,
// or nil (rerank then uses the GMF dot product) while it is not loaded.
func (s *service) ncfScorer() rerank.NCFScorer {
	n := s.ncf.Load()
	if n == nil || n.version != s.idx.Version(lr.ModelNCF) {
		return nil
	}
	return n
}

// loadNCFScorer loads the full NeuMF scorer of the active NCF version once
// the index serves that version.
func (s *service) loadNCFScorer(ctx context.Context) {
	serving := s.idx.Version(lr.ModelNCF)
	if cur := s.ncf.Load(); serving == "" || (cur != nil && cur.version == serving) {
		return
	}
	mv, err := s.db.ActiveModel(ctx, lr.ModelNCF)
	if err != nil || mv.Version != serving {
		return // the index has not caught up with the active version yet
	}
	// The scorer is in model_scorers (an imported version has none); the
	// migration that created that table moved the scorers of older versions
	// out of their params, so there is nothing to fall back to.
	format, blob, err := s.db.ModelScorer(ctx, mv.ID)
	var sc *embed.IDScorer
	if err == nil {
		sc, err = embed.DecodeScorer(format, blob)
	}
	if err != nil {
		if lr.ErrorCode(err) != lr.ENOTFOUND && ctx.Err() == nil {
			s.app.Log.Warn("NeuMF scorer of the active NCF version not loaded; rerank uses the GMF dot product", "version", mv.Version, "err", err)
		}
		return
	}
	sc.Prepare() // the serving tables, before the first request needs them
	sc.IndexOrdinals(s.ords)
	s.ncf.Store(&ncfScorer{version: mv.Version, s: sc})
	s.app.Log.Info("NeuMF scorer loaded", "version", mv.Version)
}

func newService(ctx context.Context, app *App, cfg serviceConfig) (*service, error) {
	if cfg.migrate {
		st, err := postgres.Migrate(ctx, cfg.databaseURL, func(seq int32, name string) {
			app.Log.Info("applying migration", "seq", seq, "name", name)
		})
		if err != nil {
			return nil, err
		}
		app.Log.Info("schema current", "version", st.Current)
	}
	db, err := postgres.Open(ctx, cfg.databaseURL)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, app: app, db: db, reg: prometheus.NewRegistry(), ords: lr.NewOrdinals(), started: time.Now()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := rerank.DefaultWeights()
	s.weights.Store(&w)

	s.idx, err = index.NewManager(index.Config{Store: db, Ordinals: s.ords, Params: index.Params{EfSearch: cfg.index.efSearch},
		ExactThreshold: cfg.index.exactThreshold, RecallFloor: cfg.index.recallFloor, SnapshotDir: cfg.index.snapshotDir,
		CheckEvery: cfg.index.checkEvery, Registerer: s.reg, Logger: app.Log})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.state = live.New(live.Config{Ordinals: s.ords, Expiry: cfg.expiry, Registerer: s.reg, OnPublish: func(v *live.Snapshot) { s.idx.SetLive(v) }})
	if err := s.loadUserState(ctx); err != nil {
		db.Close()
		return nil, err
	}
	replica := events.NewReplicaID() // names this run's pages in the impressions topic
	if len(cfg.brokers) > 0 {
		m := events.NewMetrics(s.reg)
		s.consumer, err = events.NewLiveConsumer(events.LiveConfig{Brokers: cfg.brokers, Topics: cfg.topics, DeadLetterTopic: cfg.deadLetterTopic,
			Lookback: cfg.lookback, Log: app.Log, Metrics: m}, s.state)
		if err != nil {
			db.Close()
			return nil, err
		}
		s.imps = events.NewImpressionProducer(events.ImpressionConfig{Brokers: cfg.brokers, Topic: cfg.impressionsTopic, Replica: replica, Log: app.Log, Registerer: s.reg})
	} else {
		app.Log.Warn("no Kafka brokers configured: the live view stays empty and /readyz reports not ready")
	}
	s.integrity = recall.NewIntegrityCache(db, app.Log)

	s.http = api.New(api.Config{MaxBodyBytes: int64(cfg.maxBody)}, app.Log, s.reg, s.reg)
	deps := &api.RecallDeps{State: s.state, Ordinals: s.ords, Index: s.idx,
		Weights: func() rerank.Weights { return *s.weights.Load() }, NCF: s.ncfScorer}
	if s.imps != nil {
		deps.Impressions = s.imps
	}
	s.engine = recall.New(recall.Config{Budget: cfg.recallBudget, ShownWindow: cfg.shownWindow, UnknownShare: engineUnknownShare(cfg.unknownShare), Registerer: s.reg},
		s.state, s.ords, s.idx, s.integrity, deps.ObserveChannel)
	deps.Engine = s.engine
	if s.imps != nil && s.engine.ShownWindow() > 0 {
		// What the other replicas showed counts here too.
		s.shown, err = events.NewShownConsumer(events.ShownConfig{Brokers: cfg.brokers, Topic: cfg.impressionsTopic, Window: s.engine.ShownWindow(),
			Replica: replica, Record: s.engine.RecordShown, Log: app.Log, Registerer: s.reg})
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	s.http.RegisterRecall(deps, s.reg)
	s.http.RegisterDebug(deps, cfg.adminToken, cfg.debugOpen)
	s.http.RegisterAdmin(s, cfg.adminToken)
	s.http.AddReadinessCheck("index", func() error {
		if s.idx.Current(lr.ModelMF) == nil {
			return errors.New("no MF index loaded")
		}
		return nil
	})
	s.http.AddReadinessCheck("live", func() error {
		if s.consumer == nil {
			return errors.New("no Kafka brokers configured")
		}
		if !s.consumer.CaughtUp() {
			return errors.New("live view has not caught up with the event topics")
		}
		return nil
	})
	s.http.AddReadinessWarning("live", func() error {
		if s.consumer == nil || !s.consumer.CaughtUp() {
			return nil
		}
		if st := s.consumer.Staleness(); st > staleAfter {
			return fmt.Errorf("live view stale for %s: the broker is unreachable or the consumer is behind; serving the last state", st.Round(time.Second))
		}
		return nil
	})
	// Requests are answered from memory (indexes, live view, caches), so a
	// database outage is a warning, not a reason to leave the Service:
	// reloads and refreshes fail meanwhile and are retried when it is back.
	s.http.AddReadinessWarning("database", func() error {
		pctx, cancel := context.WithTimeout(context.Background(), dbPingTimeout)
		defer cancel()
		if err := db.Ping(pctx); err != nil {
			return fmt.Errorf("%s: serving from memory; index reloads and the refresh of bans, blocks and weights wait for it", lr.ErrorMessage(err))
		}
		return nil
	})
	return s, nil
}

// loadUserState seeds follows and the last day of watch history from
// Postgres; events keep both current afterwards. The history is what a
// replica that ran continuously holds: the watches of the live state's user
// TTL (24 h), at most its history length (20) of the newest per user,
// sessions the sink wrote and joins still open. The events the consumer
// then replays from its lookback add to it; a join already seeded is not
// added twice (live.State.SeedWatch).
func (s *service) loadUserState(ctx context.Context) error {
	t0 := time.Now()
	n := 0
	err := s.db.StreamFollows(ctx, func(u lr.UserID, st lr.StreamerID, at time.Time) error {
		s.state.SetFollow(u, st, true, at)
		n++
		return nil
	})
	if err != nil {
		return err
	}
	w := 0
	err = s.db.UserWatchHistory(ctx, t0.Add(-s.state.UserTTL()), s.state.HistoryLen(), func(r postgres.WatchRow) error {
		s.state.SeedWatch(r.UserID, r.StreamerID, r.StreamID, r.StartedAt, r.EndedAt)
		w++
		return nil
	})
	if err != nil {
		return err
	}
	s.app.Log.Info("loaded user state", "follows", n, "watches", w, "users", s.state.Users(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// refresh reloads the slowly changing inputs: bans, blocks, rerank weights.
func (s *service) refresh(ctx context.Context) {
	s.loadNCFScorer(ctx)
	if err := s.integrity.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.app.Log.Warn("integrity refresh failed; keeping the last good bans and blocks", "err", err)
	}
	m, err := s.db.ActiveRerankModel(ctx)
	switch {
	case err == nil:
		w, err := rerank.ParseWeights(m.Weights)
		if err != nil {
			s.app.Log.Warn("active rerank weights refused; keeping the current ones", "version", m.Version, "err", err)
			return
		}
		w.Version = m.Version
		if cur := s.weights.Load(); cur.Version != w.Version {
			s.app.Log.Info("rerank weights loaded", "version", w.Version)
		}
		s.weights.Store(&w)
	case lr.ErrorCode(err) == lr.ENOTFOUND:
	default:
		if ctx.Err() == nil {
			s.app.Log.Warn("rerank weights refresh failed", "err", err)
		}
	}
}

// Reload implements api.Admin. It is refused (lr.EUNAVAILABLE, naming the
// database) while the database does not answer, and cancelled with
// errShuttingDown when the service starts to shut down: a rebuild can take
// minutes and must not hold a pod past its termination grace period.
func (s *service) Reload(ctx context.Context) (any, error) {
	if s.life != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(s.life, func() { cancel(errShuttingDown) })()
	}
	pctx, cancel := context.WithTimeout(ctx, dbPingTimeout)
	err := s.db.Ping(pctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, &lr.Error{Code: lr.EUNAVAILABLE, Op: "reload",
			Message: lr.ErrorMessage(err) + ": reload refused, the serving indexes are kept; retry when it is back", Err: err}
	}
	return s.idx.Reload(ctx)
}

// Status implements api.Admin.
func (s *service) Status() any {
	st := map[string]any{
		"uptime_s":     int(time.Since(s.started).Seconds()),
		"live":         s.state.Live(),
		"users":        s.state.Users(),
		"index":        s.idx.Status(),
		"rerank":       s.weights.Load().Version,
		"kafka":        len(s.cfg.brokers) > 0,
		"caught_up":    s.consumer != nil && s.consumer.CaughtUp(),
		"consumer_lag": []events.PartitionLag{},
	}
	if s.consumer != nil {
		st["consumer_lag"] = s.consumer.Lag()
		st["staleness_s"] = s.consumer.Staleness().Seconds()
	}
	return st
}

// run serves until ctx ends or a part fails, then shuts down in order:
// stop taking requests and drain them, then flush impressions.
func (s *service) run(ctx context.Context, listening chan<- string) error {
	defer s.db.Close()
	ln, err := net.Listen("tcp", s.cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.httpAddr, err)
	}
	hs := &http.Server{
		Handler:           s.http.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.refresh(ctx)
	s.engine.RefreshRankings()
	s.app.Log.Info("serving", "addr", ln.Addr().String())
	if listening != nil {
		listening <- ln.Addr().String()
	}

	g, gctx := errgroup.WithContext(ctx)
	s.life = gctx
	g.Go(func() error {
		// net/http's own error responses (400, 431, 505 ...) as JSON too.
		if err := hs.Serve(api.JSONTransportErrors(hs, ln)); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if _, err := s.idx.Load(gctx); err != nil && gctx.Err() == nil {
			s.app.Log.Warn("initial index load incomplete; serving without it until a reload succeeds", "err", err)
		}
		s.loadNCFScorer(gctx)
		s.idx.Run(gctx, func(ctx context.Context, fn func(string)) error { return s.db.Listen(ctx, postgres.ReloadChannel, fn) })
		return nil
	})
	if s.consumer != nil {
		g.Go(func() error { return s.consumer.Run(gctx) })
	}
	if s.shown != nil {
		g.Go(func() error { return s.shown.Run(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(s.cfg.refreshEvery)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				s.refresh(gctx)
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		s.app.Log.Info("shutting down", "timeout", s.cfg.shutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
		defer cancel()
		err := hs.Shutdown(sctx)
		if s.imps != nil {
			if ferr := s.imps.Close(sctx); ferr != nil {
				s.app.Log.Warn("impressions not all flushed at shutdown", "err", ferr)
			}
		}
		return err
	})
	return g.Wait()
}
