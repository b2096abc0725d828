package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/experiment/online"
	"github.com/liverecall/liverecall/foldin"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/offheap"
	"github.com/liverecall/liverecall/internal/tracing"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/userstore"
)

var (
	sAdminToken       = defSetting(setting{"admin-token", "LIVERECALL_ADMIN_TOKEN", "", "bearer token for /v1/admin/* and the debug routes (empty: those routes refuse every request)"})
	sDebugOpen        = defSetting(setting{"debug-open", "LIVERECALL_DEBUG_OPEN", "false", "serve /v1/debug/neighbors without the token"})
	sLookback         = defSetting(setting{"live-lookback", "LIVERECALL_LIVE_LOOKBACK", "1h", "how far back the live view replays events at start"})
	sExpiry           = defSetting(setting{"live-expiry", "LIVERECALL_LIVE_EXPIRY", "10m", "a stream with no event for this long is ended"})
	sUserIdle         = defSetting(setting{"user-idle", "LIVERECALL_USER_IDLE", "30m", "a user with no request and no event for this long is evicted from memory and loaded from Postgres again at their next request"})
	sUserLoadWait     = defSetting(setting{"user-load-wait", "LIVERECALL_USER_LOAD_WAIT", "5ms", "how long a request waits for its user's follows and history to load from Postgres before it is answered without them"})
	sImpressionsTopic = defSetting(setting{"impressions-topic", "LIVERECALL_IMPRESSIONS_TOPIC", events.DefaultImpressionTopic, "topic recall responses are logged to"})
	sShownTopic       = defSetting(setting{"shown-topic", "LIVERECALL_SHOWN_TOPIC", events.DefaultShownTopic, "topic of the replicas' shown records (user, time, streamers of each page), which every replica reads into its already-shown filter"})
	sRecallBudget     = defSetting(setting{"recall-budget", "LIVERECALL_RECALL_BUDGET", "8ms", "time budget of the recall stage of a request (each channel gets three quarters of it)"})
	sShownWindow      = defSetting(setting{"shown-window", "LIVERECALL_SHOWN_WINDOW", "10m", "streamers shown to a user (by any replica) within this window are shown again only to fill a page the others cannot"})
	sUnknownShare     = defSetting(setting{"unknown-share", "LIVERECALL_UNKNOWN_SHARE", "0.2", "most of a page (share of k, at least 1 item) streamers unknown to the serving models may take; 0: none, 1: no cap"})
	sRefreshEvery     = defSetting(setting{"refresh-every", "LIVERECALL_REFRESH_EVERY", "30s", "how often bans, blocks and reranker weights are reloaded from Postgres"})
	sSnapshotDir      = defSetting(setting{"index-snapshot-dir", "LIVERECALL_INDEX_SNAPSHOT_DIR", "", "directory for index snapshots, loaded at start when they match the active version (empty: none)"})
	sRecallFloor      = defSetting(setting{"index-recall-floor", "LIVERECALL_INDEX_RECALL_FLOOR", "0.9", "a rebuilt index whose self-check recall@10 is below this is refused"})
	sCheckEvery       = defSetting(setting{"index-check-every", "LIVERECALL_INDEX_CHECK_EVERY", "1m", "how often the active model versions, and the serving experiments with the versions their arms name, are checked (besides LISTEN/NOTIFY)"})
	sRecallTarget     = defSetting(setting{"index-recall", "LIVERECALL_INDEX_RECALL", "0.95", "recall@10 target of index searches: each uses the smallest beam the build's self-check measured reaching it, or an exact scan when none does or a scan is cheaper (0: off, the threshold and beam below)"})
	sExactThreshold   = defSetting(setting{"index-exact-threshold", "LIVERECALL_INDEX_EXACT_THRESHOLD", strconv.Itoa(index.DefaultExactThreshold), "without a measured plan (--index-recall 0, or an index from a format-2 snapshot): allowed sets up to this size (or under 10% of the index) are scanned exactly instead of searched in the graph"})
	sEfSearch         = defSetting(setting{"index-ef-search", "LIVERECALL_INDEX_EF_SEARCH", "64", "HNSW beam width per query without a measured plan (also swept by the self-check)"})
	sUserCacheBytes   = defSetting(setting{"user-cache-bytes", "LIVERECALL_USER_CACHE_BYTES", "256MiB", "size of the in-process cache of active users' vectors, read from Postgres on a miss"})
	sFoldIn           = defSetting(setting{"foldin", "LIVERECALL_FOLDIN", "true", "fold users' MF vectors in from their recent watches as their watch events arrive (false: the nightly vectors only)"})
	sFoldInWindow     = defSetting(setting{"foldin-window", "LIVERECALL_FOLDIN_WINDOW", "6h", "watches started within this window are folded into the user's MF vector, which serves until its newest watch leaves the window"})
	sFoldInNewUser    = defSetting(setting{"foldin-new-user-window", "LIVERECALL_FOLDIN_NEW_USER_WINDOW", "24h", "the fold-in window of a user the serving MF version has no vector of (new since it was trained); at least --foldin-window"})
	sFoldInDebounce   = defSetting(setting{"foldin-debounce", "LIVERECALL_FOLDIN_DEBOUNCE", "1s", "a user's watch events within this of the first are folded in once"})
	sFoldInRate       = defSetting(setting{"foldin-rate", "LIVERECALL_FOLDIN_RATE", "200", "most fold-ins per second (over it a fold-in is skipped until the user's next event)"})
	sFoldInMaxUsers   = defSetting(setting{"foldin-max-users", "LIVERECALL_FOLDIN_MAX_USERS", "100000", "most folded user vectors held in memory (least recently folded out first)"})
	sConsoleSample    = defSetting(setting{"console-sample-every", "LIVERECALL_CONSOLE_SAMPLE_EVERY", "5s", "how often the operator console's traffic figures (GET /v1/admin/traffic) are sampled from the service's metrics; the last 120 intervals are kept"})
)

// foldInConfig is the fold-in part of serviceConfig.
type foldInConfig struct {
	enabled  bool
	window   time.Duration
	newUser  time.Duration
	debounce time.Duration
	rate     float64
	maxUsers int
}

// indexConfig is the index part of serviceConfig.
type indexConfig struct {
	snapshotDir    string
	recallFloor    float64
	checkEvery     time.Duration
	exactThreshold int
	efSearch       int
	recallTarget   float64 // the flag: 0 is off
}

// indexRecallTarget maps the --index-recall flag (0: off) onto
// index.Params.RecallTarget (0: the default, negative: off).
func indexRecallTarget(flag float64) float64 {
	if flag == 0 {
		return -1
	}
	return flag
}

// serviceConfig is everything serve (and dev) read.
type serviceConfig struct {
	serveConfig
	brokers          []string
	topics           []string
	deadLetterTopic  string
	impressionsTopic string
	shownTopic       string
	adminToken       string
	debugOpen        bool
	lookback         time.Duration
	expiry           time.Duration
	userIdle         time.Duration
	userLoadWait     time.Duration
	recallBudget     time.Duration
	shownWindow      time.Duration
	unknownShare     float64 // 0..1, as the flag (recall.Config.UnknownShare takes 0 as its default)
	userCacheBytes   int64
	refreshEvery     time.Duration
	consoleEvery     time.Duration // between samples of the console's traffic
	index            indexConfig
	foldIn           foldInConfig

	// experimentReports configures the experiments' reports kept for
	// metrics and the dashboard.
	experimentReports experimentReportConfig
}

// staleAfter: a live view further behind than this is reported in /readyz.
const staleAfter = 15 * time.Second

// service is the running server: the parts and how they are wired.
type service struct {
	// traffic is the console's traffic figures, sampled from reg.
	traffic *api.TrafficSampler

	cfg       serviceConfig
	app       *App
	db        *postgres.DB
	reg       *metricsRegistry
	ords      *lr.Ordinals
	state     *live.State
	consumer  *events.LiveConsumer
	idx       *index.Manager
	users     *userstore.Store // the users' vectors: a cache in front of Postgres
	folder    *foldin.Folder   // users' MF vectors folded in from their session; nil when off
	integrity *recall.IntegrityCache
	engine    *recall.Engine
	models    *recommend.Models // reranker weights and NeuMF scorer, and their refresh
	// experiments are the serving experiments (syncExperiments sets them);
	// indexLoaded is closed once the active indexes are loaded at start,
	// after which the experiments' versions load.
	experiments *recommend.ExperimentSet
	indexLoaded chan struct{}
	recommend   *recommend.Service
	imps        *events.ImpressionProducer
	shown       *events.ShownConsumer // the other replicas' pages, into engine's shown log
	http        *api.Server
	tracing     *tracing.Provider // off unless an OTLP endpoint is configured
	tracer      trace.Tracer      // nil while tracing is off
	started     time.Time
	// life ends when the service starts to shut down (set by run before it
	// serves): long admin operations end with it instead of holding the
	// shutdown until its timeout.
	life context.Context

	// experimentReports keeps the serving experiments' reports: their
	// metrics, and GET /v1/admin/experiments (the console's Experiments).
	experimentReports *online.Reporter
}

// errShuttingDown is the cause an in-flight reload is cancelled with when
// the service shuts down.
var errShuttingDown = lr.Errorf(lr.EUNAVAILABLE, "the service is shutting down: the reload was cancelled and the serving indexes are kept; retry on another replica")

// dbPingTimeout bounds the database check of /readyz and of an admin reload.
const dbPingTimeout = 2 * time.Second

func newService(ctx context.Context, app *App, cfg serviceConfig) (*service, error) {
	// The indexes' and the NeuMF scorer's arrays lie outside the Go heap,
	// which GOMEMLIMIT does not see: make it the whole process's budget.
	offheap.LimitMemory()
	if cfg.migrate {
		st, err := postgres.Migrate(ctx, cfg.databaseURL, func(seq int32, name string) {
			app.Log.Info("applying migration", "seq", seq, "name", name)
		})
		if err != nil {
			return nil, err
		}
		app.Log.Info("schema current", "version", st.Current)
	}
	tp, err := setupTracing(app, cfg.otlpEndpoint, "serve")
	if err != nil {
		return nil, err
	}
	tracer := tp.Tracer(tracerName)
	db, err := postgres.Open(ctx, cfg.databaseURL, postgres.WithTracer(tracer), postgres.WithDefaultMaxConns(servePoolConns))
	if err != nil {
		shutdownTracing(app, tp)
		return nil, err
	}
	s := &service{cfg: cfg, app: app, db: db, reg: newMetricsRegistry(), ords: lr.NewOrdinals(), started: time.Now(), tracing: tp, tracer: tracer}
	registerProcessMetrics(s.reg, db)
	if err := s.build(ctx); err != nil {
		db.Close()
		shutdownTracing(app, tp)
		return nil, err
	}
	s.wireHTTP()
	return s, nil
}

// build makes the parts: the index, the live view (which loads each user's
// follows and history from Postgres at their first request, not at start),
// the Kafka consumers and producer, recall and the recommendation service.
func (s *service) build(ctx context.Context) error {
	cfg, app := s.cfg, s.app
	var err error
	s.idx, err = index.NewManager(index.Config{Store: s.db, Ordinals: s.ords, Params: index.Params{EfSearch: cfg.index.efSearch, RecallTarget: indexRecallTarget(cfg.index.recallTarget)},
		ExactThreshold: cfg.index.exactThreshold, RecallFloor: cfg.index.recallFloor, SnapshotDir: cfg.index.snapshotDir,
		CheckEvery: cfg.index.checkEvery, Registerer: s.reg, Logger: app.Log})
	if err != nil {
		return err
	}
	// The users' first-request loads take at most half the pool's
	// connections, so that the user store's batched reads of user vectors
	// always find one (unbounded, the loads of a cold start held them all
	// and most user-vector reads came too late for their channels).
	lc := live.Config{Ordinals: s.ords, Expiry: cfg.expiry, Loader: userLoader{s.db}, UserIdle: cfg.userIdle, LoadWait: cfg.userLoadWait,
		MaxLoads: serveMaxLoads(s.db.Pool.Config().MaxConns), Registerer: s.reg, OnPublish: func(v *live.Snapshot) { s.idx.SetLive(v) }}
	if cfg.foldIn.enabled {
		// The folder is made below, once the live state and the user
		// store it reads exist; no event is applied before Run.
		lc.OnWatch = func(us []lr.UserID) { s.folder.Schedule(us) }
	}
	s.state = live.New(lc)
	replica := events.NewReplicaID() // names this run's pages in the impressions topic
	if len(cfg.brokers) > 0 {
		s.consumer, err = events.NewLiveConsumer(events.LiveConfig{Brokers: cfg.brokers, Topics: cfg.topics, DeadLetterTopic: cfg.deadLetterTopic,
			Lookback: cfg.lookback, Log: app.Log, Metrics: events.NewLiveMetrics(s.reg), Tracer: s.tracer}, s.state)
		if err != nil {
			return err
		}
		s.imps = events.NewImpressionProducer(events.ImpressionConfig{Brokers: cfg.brokers, Topic: cfg.impressionsTopic, ShownTopic: cfg.shownTopic, Replica: replica, Log: app.Log, Registerer: s.reg, Tracer: s.tracer})
	} else {
		app.Log.Warn("no Kafka brokers configured: the live view stays empty and /readyz reports not ready")
	}
	s.integrity = recall.NewIntegrityCache(s.db, app.Log)
	s.users, err = userstore.New(userstore.Config{Source: s.db, MaxBytes: cfg.userCacheBytes, Registerer: s.reg, Log: app.Log})
	if err != nil {
		return err
	}
	var users recall.UserVectors = s.users
	if cfg.foldIn.enabled {
		s.folder = foldin.New(foldin.Config{Index: s.idx, History: s.state, Nightly: s.users, Ordinals: s.ords,
			Window: cfg.foldIn.window, NewUserWindow: cfg.foldIn.newUser, Debounce: cfg.foldIn.debounce, Rate: cfg.foldIn.rate, MaxUsers: cfg.foldIn.maxUsers,
			Registerer: s.reg, Log: app.Log})
		users = s.folder.Overlay(s.users)
	}
	s.engine = recall.New(recall.Config{Budget: cfg.recallBudget, ShownWindow: cfg.shownWindow, UnknownShare: engineUnknownShare(cfg.unknownShare), Registerer: s.reg,
		Tracer: s.tracer},
		s.state, s.ords, s.idx, users, s.integrity, nil)
	if s.imps != nil && s.engine.ShownWindow() > 0 {
		// What the other replicas showed counts here too.
		s.shown, err = events.NewShownConsumer(events.ShownConfig{Brokers: cfg.brokers, Topic: cfg.shownTopic, Window: s.engine.ShownWindow(),
			Replica: replica, Record: s.engine.RecordShown, Log: app.Log, Registerer: s.reg})
		if err != nil {
			return err
		}
	}
	s.models = recommend.NewModels(recommend.ModelsConfig{Store: s.db, ActiveWeights: s.activeWeights, WeightsByVersion: s.db.RerankWeights,
		Serving: s.idx.Version, Ordinals: s.ords, Log: app.Log, Registerer: s.reg})
	s.experiments, s.indexLoaded = recommend.NewExperimentSet(), make(chan struct{})
	pc := s.db.Pool.Config().ConnConfig
	rc := recommend.Config{Recall: s.engine, Users: s.state, Streams: s.state, Index: s.idx, Ordinals: s.ords, Scorers: s.models,
		Experiments: s.experiments, // arms resolve their versions in s.idx and s.models
		UserStore:   s.users, UserStoreName: fmt.Sprintf("the database %s:%d/%s", pc.Host, pc.Port, pc.Database),
		Log: app.Log, Registerer: s.reg, Tracer: s.tracer}
	if s.folder != nil {
		rc.Folded = s.folder
	}
	if s.imps != nil {
		rc.Impressions = s.imps
	}
	s.recommend = recommend.New(rc)
	s.experimentReports = s.newExperimentReports()
	return nil
}

// activeWeights reads the active reranker weights (recommend.ModelsConfig).
func (s *service) activeWeights(ctx context.Context) (string, []byte, error) {
	m, err := s.db.ActiveRerankModel(ctx)
	return m.Version, m.Weights, err
}

// wireHTTP makes the HTTP edge: routes and readiness.
func (s *service) wireHTTP() {
	cfg := s.cfg
	s.http = api.New(api.Config{MaxBodyBytes: int64(cfg.maxBody), Tracer: s.tracer, AdminToken: cfg.adminToken}, s.app.Log, s.reg, s.reg)
	s.http.RegisterRecall(s.recommend)
	s.http.RegisterDebug(s.recommend, cfg.adminToken, cfg.debugOpen)
	s.http.RegisterAdmin(s, cfg.adminToken)
	s.traffic = api.NewTrafficSampler(s.reg, api.TrafficConfig{Every: cfg.consoleEvery})
	// With the reports never refreshed (--experiment-report-every 0) the
	// console is told there is no source rather than "not computed yet".
	var reports api.ExperimentReports
	if cfg.experimentReports.every > 0 {
		reports = s.experimentReports
	}
	s.http.RegisterConsole(s.traffic, reports, cfg.adminToken)
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
		if err := s.db.Ping(pctx); err != nil {
			return fmt.Errorf("%s: serving from memory; index reloads and the refresh of bans, blocks and weights wait for it", lr.ErrorMessage(err))
		}
		return nil
	})
}

// servePoolConns is the pool's size when the database URL sets none: the
// LISTEN's connection, the user store's batch queries
// (userstore.DefaultMaxInflight), the users' loads (live.DefaultMaxLoads)
// and two for reloads, refreshes and model loads.
const servePoolConns = 1 + userstore.DefaultMaxInflight + live.DefaultMaxLoads + 2

// serveMaxLoads is how many users' loads may hold a connection at once:
// live.DefaultMaxLoads, and at most half of a smaller pool.
func serveMaxLoads(poolConns int32) int {
	return max(1, min(live.DefaultMaxLoads, int(poolConns)/2))
}

// userLoader reads users' stored live state (live.BatchLoader) from
// Postgres.
type userLoader struct{ db *postgres.DB }

// LoadUser implements live.Loader.
func (l userLoader) LoadUser(ctx context.Context, u lr.UserID, since time.Time, n int) (live.UserRecord, error) {
	st, err := l.db.UserState(ctx, u, since, n)
	if err != nil {
		return live.UserRecord{}, err
	}
	return userRecord(st), nil
}

// LoadUsers implements live.BatchLoader.
func (l userLoader) LoadUsers(ctx context.Context, users []lr.UserID, since time.Time, n int) (map[lr.UserID]live.UserRecord, error) {
	sts, err := l.db.UserStates(ctx, users, since, n)
	if err != nil {
		return nil, err
	}
	recs := make(map[lr.UserID]live.UserRecord, len(sts))
	for u, st := range sts {
		if len(st.Follows)+len(st.Watches) > 0 {
			recs[u] = userRecord(st)
		}
	}
	return recs, nil
}

func userRecord(st postgres.UserState) live.UserRecord {
	rec := live.UserRecord{Follows: make([]live.Follow, len(st.Follows)), Watches: make([]live.Watch, len(st.Watches))}
	for i, f := range st.Follows {
		rec.Follows[i] = live.Follow{StreamerID: f.StreamerID, Active: f.Active, At: f.UpdatedAt}
	}
	for i, w := range st.Watches {
		rec.Watches[i] = live.Watch{StreamerID: w.StreamerID, StreamID: w.StreamID, JoinedAt: w.StartedAt, LeftAt: w.EndedAt}
	}
	return rec
}

// refresh reloads the slowly changing inputs: bans, blocks, and the
// reranker's models (recommend.Models.Refresh).
func (s *service) refresh(ctx context.Context) {
	if err := s.integrity.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.app.Log.Warn("integrity refresh failed; keeping the last good bans and blocks", "err", err)
	}
	s.models.Refresh(ctx)
}

// Reload implements api.Admin. It is refused (lr.EUNAVAILABLE, naming the
// database) while the database does not answer, and cancelled with
// errShuttingDown when the service starts to shut down: a rebuild can take
// minutes and must not hold a pod past its termination grace period.
func (s *service) Reload(ctx context.Context) ([]api.KindReload, error) {
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
	res, err := s.idx.Reload(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.KindReload, len(res))
	for i, r := range res {
		out[i] = api.KindReload(r)
	}
	return out, nil
}

// Status implements api.Admin.
func (s *service) Status() api.Status {
	us := s.users.Stats()
	st := api.Status{
		UptimeS: int(time.Since(s.started).Seconds()),
		Live:    s.state.Live(),
		Users:   s.state.Users(),
		UserCache: &api.UserCacheStatus{Entries: us.Entries, Bytes: us.Bytes, MaxBytes: us.MaxBytes,
			Hits: us.Hits, NegativeHits: us.NegativeHits, Misses: us.Misses},
		Rerank:      s.models.Weights().ModelVersion(),
		Scorers:     []api.ScorerStatus{},
		Kafka:       len(s.cfg.brokers) > 0,
		CaughtUp:    s.consumer != nil && s.consumer.CaughtUp(),
		ConsumerLag: []api.PartitionLag{},
	}
	if idx := s.idx.Status(); idx != nil {
		st.Index = make([]api.IndexStatus, len(idx))
		for i, k := range idx {
			st.Index[i] = api.IndexStatus{Kind: k.Kind, ModelID: k.ModelID, Version: k.Version, Vectors: k.Vectors, Users: k.Users,
				LiveVectors: k.LiveVectors, BuildSeconds: k.BuildSeconds, SelfCheck: k.SelfCheck, LastReload: k.LastReload,
				LastError: k.LastError, PreviousVersion: k.PreviousVersion, Plan: k.Plan, RecallTarget: k.RecallTarget, SearchEf: k.SearchEf,
				PlanEf: k.PlanEf, PlanRecall: k.PlanRecall, Versions: make([]api.IndexVersion, len(k.Versions))}
			for j, v := range k.Versions {
				st.Index[i].Versions[j] = api.IndexVersion(v)
			}
		}
	}
	for _, sc := range s.models.Status() {
		st.Scorers = append(st.Scorers, api.ScorerStatus(sc))
	}
	if s.consumer != nil {
		lag := s.consumer.Lag()
		st.ConsumerLag = nil
		if lag != nil {
			st.ConsumerLag = make([]api.PartitionLag, len(lag))
			for i, l := range lag {
				st.ConsumerLag[i] = api.PartitionLag(l)
			}
		}
		staleness := s.consumer.Staleness().Seconds()
		st.StalenessS = &staleness
	}
	return st
}

// run serves until ctx ends or a part fails, then shuts down in order:
// stop taking requests and drain them, then flush impressions.
func (s *service) run(ctx context.Context, listening chan<- string) error {
	defer shutdownTracing(s.app, s.tracing)
	defer s.db.Close()
	ln, err := net.Listen("tcp", s.cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.httpAddr, err)
	}
	hs := newHTTPServer(s.http.Handler())
	phs, pln, err := listenPprof(s.cfg.pprofAddr)
	if err != nil {
		ln.Close()
		return err
	}
	s.refresh(ctx)
	s.engine.RefreshRankings()
	s.app.Log.Info("serving", "addr", ln.Addr().String())
	if pln != nil {
		s.app.Log.Info("serving Go profiles", "addr", pln.Addr().String(), "path", "/debug/pprof/")
	}
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
	if phs != nil {
		g.Go(func() error { return servePprof(phs, pln) })
		g.Go(func() error { <-gctx.Done(); return phs.Close() })
	}
	g.Go(func() error { s.traffic.Run(gctx); return nil })
	g.Go(func() error { s.runIndex(gctx); return nil })
	g.Go(func() error { s.runExperiments(gctx, s.indexLoaded, s.cfg.index.checkEvery); return nil })
	if s.folder != nil {
		g.Go(func() error { s.folder.Run(gctx); return nil })
	}
	if s.consumer != nil {
		g.Go(func() error { return s.consumer.Run(gctx) })
	}
	if s.shown != nil {
		g.Go(func() error { return s.shown.Run(gctx) })
	}
	g.Go(func() error { s.refreshEvery(gctx); return nil })
	if s.cfg.experimentReports.every > 0 {
		g.Go(func() error { s.experimentReports.Run(gctx); return nil })
	}
	g.Go(func() error { <-gctx.Done(); return s.shutdown(hs) })
	return g.Wait()
}

// newHTTPServer serves h with the service's transport limits.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// runIndex loads the indexes (from snapshots where they match), the NeuMF
// scorer of the NCF version they serve, then (closing indexLoaded, which
// lets the experiments' versions load) follows the active versions until
// ctx ends.
func (s *service) runIndex(ctx context.Context) {
	if _, err := s.idx.Load(ctx); err != nil && ctx.Err() == nil {
		s.app.Log.Warn("initial index load incomplete; serving without it until a reload succeeds", "err", err)
	}
	s.models.LoadNCF(ctx)
	close(s.indexLoaded)
	s.idx.Run(ctx, func(ctx context.Context, fn func(string)) error { return s.db.Listen(ctx, postgres.ReloadChannel, fn) })
}

// refreshEvery refreshes (see refresh) every cfg.refreshEvery until ctx ends.
func (s *service) refreshEvery(ctx context.Context) {
	t := time.NewTicker(s.cfg.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx)
		}
	}
}

// shutdown stops taking requests and drains them, then flushes the
// impressions, within the shutdown timeout.
func (s *service) shutdown(hs *http.Server) error {
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
}
