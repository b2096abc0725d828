package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/embedded"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/sim"
)

// devDatabase is dev's database when DATABASE_URL is not set: its own, so
// the demo never mixes its simulated history into another database.
const devDatabase = "postgres://postgres@127.0.0.1:5432/liverecall_dev?sslmode=disable"

func init() {
	register(&command{name: "dev", summary: "run the whole system on one machine with a simulated world and print a report (make demo)", run: runDev})
}

type devConfig struct {
	databaseURL string
	httpAddr    string
	brokers     []string
	days        int
	streamers   int
	users       int
	seed        uint64
	ncfEpochs   int
	reportAfter time.Duration
	requests    int
	fresh       bool
	liveSpeed   float64
	context     bool // sim.Config.Context; each decision's context goes with its request
}

// Defaults of dev's own flags that the README quotes.
const (
	devReportAfter = 20 * time.Second
	devLiveSpeed   = 240
)

func runDev(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "dev")
	dbURL := f.FlagSet.String("database-url", firstNonEmpty(app.Getenv("DATABASE_URL"), app.Getenv("LIVERECALL_DATABASE_URL"), devDatabase),
		"PostgreSQL connection URL; the database is created if missing [$DATABASE_URL]")
	addr := f.FlagSet.String("http-addr", firstNonEmpty(app.Getenv("LIVERECALL_HTTP_ADDR"), "127.0.0.1:8080"), "address the HTTP API listens on [$LIVERECALL_HTTP_ADDR]")
	brokers := f.String(sKafkaBrokers)
	days, streamers, users, seed := f.Int(sSimDays), f.Int(sSimStreamers), f.Int(sSimUsers), f.Int(sSimSeed)
	withContext := f.Bool(sSimContext)
	ncfEpochs := f.FlagSet.Int("ncf-epochs", 0, "NeuMF epochs (0: the tuned default)")
	reportAfter := f.FlagSet.Duration("report-after", devReportAfter, "how long live traffic runs before the report (the live world's accelerated window)")
	requests := f.FlagSet.Int("requests", 2000, "recall requests sent to measure latency")
	fresh := f.FlagSet.Bool("fresh", false, "simulate and train again even if the database already has history and models")
	liveSpeed := f.FlagSet.Float64("live-speed", devLiveSpeed, "until the report the live world runs this many times faster than real time, starting far enough in the past to catch up with the clock at the report, then in real time (1: real time throughout)")
	logFile := f.FlagSet.String("log-file", filepath.Join(os.TempDir(), "liverecall-dev.log"), "file the service's JSON logs go to, so they do not bury the report (-: stderr)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		fmt.Fprintf(app.Stderr, "liverecall dev: unexpected argument %q\n", f.Arg(0))
		return errUsage
	}
	switch {
	case *liveSpeed < 1 || math.IsInf(*liveSpeed, 0) || math.IsNaN(*liveSpeed):
		return lr.Errorf(lr.EINVALID, "--live-speed %v: want 1 (real time) or more", *liveSpeed)
	case *reportAfter <= 0:
		return lr.Errorf(lr.EINVALID, "--report-after %s: want a positive duration", *reportAfter)
	}
	if *logFile != "-" {
		fh, err := os.Create(*logFile)
		if err != nil {
			return lr.Errorf(lr.EINVALID, "--log-file: %v", err)
		}
		defer fh.Close()
		logged := *app
		logged.Log = newLogger(fh, app.Getenv(sLogLevel.Env), firstNonEmpty(app.Getenv(sLogFormat.Env), sLogFormat.Default))
		app = &logged
		fmt.Fprintf(app.Stdout, "==> logs: %s (--log-file changes it)\n", *logFile)
	}
	return dev(ctx, app, devConfig{databaseURL: *dbURL, httpAddr: *addr, brokers: splitCommaList(*brokers), days: *days, streamers: *streamers,
		users: *users, seed: uint64(*seed), ncfEpochs: *ncfEpochs, reportAfter: *reportAfter, requests: *requests, fresh: *fresh, liveSpeed: *liveSpeed, context: *withContext})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func dev(ctx context.Context, app *App, c devConfig) error {
	out := app.Stdout
	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }

	step("database: migrating %s", redactURL(c.databaseURL))
	if _, err := postgres.CreateDatabaseIfMissing(ctx, c.databaseURL); err != nil {
		return err
	}
	if _, err := postgres.Migrate(ctx, c.databaseURL, nil); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()

	if len(c.brokers) == 0 {
		k, err := embedded.Start(0, embedded.Topic{Name: events.DefaultTopic, Partitions: 8},
			embedded.Topic{Name: events.DefaultDeadLetterTopic, Partitions: 1}, embedded.Topic{Name: events.DefaultImpressionTopic, Partitions: 4},
			embedded.Topic{Name: events.DefaultShownTopic, Partitions: 4})
		if err != nil {
			return err
		}
		defer k.Close()
		c.brokers = k.Brokers()
		step("kafka: no brokers configured, started an in-process Kafka-protocol broker at %s", c.brokers[0])
	} else {
		step("kafka: using %s", strings.Join(c.brokers, ","))
	}

	// The same world (seed, size, start) serves the history and the live
	// part: a database that holds this world's history gives its start; one
	// that holds another world's (or history of unknown origin) is
	// simulated again, and the models trained again.
	start := defaultSimStart(c.days)
	have, err := db.CountHistory(ctx)
	if err != nil {
		return err
	}
	if have.Watches > 0 && !c.fresh {
		rec, ok, err := db.SimWorldRecorded(ctx)
		switch {
		case err != nil:
			return err
		case ok && rec.Seed == c.seed && rec.Streamers == c.streamers && rec.Users == c.users && rec.Context == c.context:
			start = rec.Start
		default:
			step("the history in the database is not of this world (seed %d, %d streamers, %d users, context %v): simulating and training again", c.seed, c.streamers, c.users, c.context)
			c.fresh = true
		}
	}
	if c.fresh || have.Watches == 0 {
		step("simulating %d days of history: %d streamers, %d users (seed %d)", c.days, c.streamers, c.users, c.seed)
		if err := simulate(ctx, app, simConfig{days: c.days, streamers: c.streamers, users: c.users, seed: c.seed, start: start,
			toPostgres: true, replace: true, databaseURL: c.databaseURL, context: c.context}); err != nil {
			return err
		}
	} else {
		step("history already in the database (%s from %s); --fresh simulates again", plural(have.Watches, "watch session"), start.Format(time.DateOnly))
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		if _, err := db.ActiveModel(ctx, kind); err == nil && !c.fresh {
			step("model %s: an active version exists", kind)
			continue
		}
		step("training %s", kind)
		args := []string{"--database-url", c.databaseURL, "--model", string(kind), "--force"}
		if kind == lr.ModelNCF && c.ncfEpochs > 0 {
			args = append(args, "--epochs", fmt.Sprint(c.ncfEpochs))
		}
		if err := runTrain(ctx, app, args); err != nil {
			return fmt.Errorf("training %s: %w", kind, err)
		}
	}

	// The live world runs faster than real time until the report, starting
	// lag in the past so as to reach the clock then (see liveSchedule): the
	// live view must keep streams, viewers and users that long behind the
	// clock, so its expiry, idle time and replay window grow by lag.
	lag := time.Duration((c.liveSpeed - 1) * float64(c.reportAfter))
	token := randomToken()
	cfg, err := parseServiceFlags(app, "dev", []string{"--database-url", c.databaseURL, "--http-addr", c.httpAddr,
		"--kafka-brokers", strings.Join(c.brokers, ","), "--admin-token", token})
	if err != nil {
		return err
	}
	cfg.expiry += lag
	cfg.userIdle += lag
	cfg.lookback += lag
	svcCtx, stopSvc := context.WithCancel(ctx)
	defer stopSvc()
	svc, err := newService(svcCtx, app, cfg)
	if err != nil {
		return err
	}
	addrc := make(chan string, 1)
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.run(svcCtx, addrc) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-svcDone:
		return err
	}
	base := "http://" + addr
	step("serving on %s", base)
	if err := waitReady(ctx, base, 3*time.Minute); err != nil {
		return err
	}

	// The world goes on live: streams already live are announced with their
	// audiences, then events follow the schedule. Every user decision is
	// scored against what the service recommends at that moment.
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start, Context: c.context})
	if err != nil {
		return err
	}
	prod := events.NewProducer(events.ProducerConfig{Brokers: c.brokers})
	defer prod.Close()
	q := &liveQuality{world: w, eval: sim.NewEvaluator(10), client: &http.Client{Timeout: 2 * time.Second}, url: base + "/v1/recall"}
	sched := newLiveSchedule(time.Now(), c.liveSpeed, c.reportAfter)
	caughtUp := make(chan struct{})
	liveDone := make(chan error, 1)
	synced := &liveSync{state: svc.state, within: q.client.Timeout}
	go func() { liveDone <- runLiveWorld(svcCtx, w, prod, q, synced, sched, func() { close(caughtUp) }) }()
	if c.liveSpeed > 1 {
		step("ready; the live world starts %s in the past and runs at %gx real time, reaching the clock at the report in %s", humanDuration(lag), c.liveSpeed, c.reportAfter)
	} else {
		step("ready; letting live traffic run for %s", c.reportAfter)
	}
	select {
	case <-caughtUp:
	case <-ctx.Done():
	case err := <-liveDone:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("live simulation: %w", err)
		}
	}
	if ctx.Err() == nil {
		if err := devReport(ctx, app, db, svc, base, token, c, q); err != nil {
			app.Log.Warn("report incomplete", "err", err)
		}
		fmt.Fprintln(out, "\nRunning. Press Ctrl-C to stop.")
	}
	<-ctx.Done()
	stopSvc()
	<-liveDone
	err = <-svcDone
	fmt.Fprintf(out, "stopped; live quality over the whole run: %s\n", q.result())
	return err
}

// liveSchedule maps the live world's time onto the wall clock: from wall0,
// the world runs at speed times real time from simFrom = wall0 - (speed-1)
// × window, so that it reaches the clock at catchUp = wall0 + window; from
// then on it runs in real time, event time equal to the clock. Event times
// so never run ahead of the clock (which the service would refuse beyond
// its MaxFuture), and they lag it by at most (speed-1) × window.
type liveSchedule struct {
	wall0, simFrom, catchUp time.Time
	speed                   float64
}

func newLiveSchedule(now time.Time, speed float64, window time.Duration) liveSchedule {
	now = now.UTC().Truncate(time.Millisecond)
	lag := time.Duration((speed - 1) * float64(window))
	return liveSchedule{wall0: now, simFrom: now.Add(-lag), catchUp: now.Add(window), speed: speed}
}

// due is the wall-clock time at which the event of time ts is sent.
func (s liveSchedule) due(ts time.Time) time.Time {
	if !ts.Before(s.catchUp) {
		return ts
	}
	return s.wall0.Add(time.Duration(float64(ts.Sub(s.simFrom)) / s.speed))
}

// pace wraps emit so that each event goes out at its due time (at once if
// that has passed), calling flush before each wait, and calls caughtUp
// once, before the first event of time catchUp or later: every event and
// decision before the catch-up has then been sent and scored.
func (s liveSchedule) pace(ctx context.Context, emit func(lr.Event) error, flush func() error, caughtUp func()) func(lr.Event) error {
	var w sim.Waiter
	return func(e lr.Event) error {
		if caughtUp != nil && !e.TS.Before(s.catchUp) {
			caughtUp()
			caughtUp = nil
		}
		if err := w.Until(ctx, s.due(e.TS), flush); err != nil {
			return err
		}
		return emit(e)
	}
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			if k := strings.Index(u[j+3:i], ":"); k >= 0 {
				return u[:j+3+k] + ":***" + u[i:]
			}
		}
	}
	return u
}

func waitReady(ctx context.Context, base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = string(b)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("service not ready after %s: %s", within, last)
}

// liveQuality scores each simulated decision against the recommendations
// the service gives that user just before the decision.
type liveQuality struct {
	world  *sim.World // the users' UTC offsets, for the requests' context
	mu     sync.Mutex
	eval   *sim.Evaluator
	client *http.Client
	url    string
	errs   int
}

func (q *liveQuality) choice(c sim.Choice) error {
	var offset time.Duration
	if i := sim.UserIndex(c.User); q.world != nil && i >= 0 && i < q.world.Config().Users {
		offset = q.world.User(i).UTCOffset
	}
	body := choiceRequest(c, offset, time.Now())
	resp, err := q.client.Post(q.url, "application/json", strings.NewReader(body))
	if err != nil {
		q.mu.Lock()
		q.errs++
		q.mu.Unlock()
		return nil
	}
	var r api.RecallResponse
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil || resp.StatusCode != 200 {
		q.errs++
		return nil
	}
	ranked := make([]lr.StreamerID, len(r.Items))
	for i, it := range r.Items {
		ranked[i] = lr.StreamerID(it.StreamerID)
	}
	q.eval.Add(c, ranked)
	return nil
}

// choiceRequest is the body of the recall request for decision c, sent at
// now: the user, a page of 10 and, when the world has request context,
// the context a client would send (device, locale, UTC offset). The
// service reads the local time from when it receives the request and the
// offset; the live world runs ahead of the clock until the report
// (--live-speed), so the offset sent is the user's shifted by the world's
// lead, which makes the service's local time the simulated one (the
// user's own offset when that would be out of range).
func choiceRequest(c sim.Choice, offset time.Duration, now time.Time) string {
	if c.Context == (lr.RequestContext{}) {
		return fmt.Sprintf(`{"user_id":%d,"k":10}`, c.User)
	}
	rc := map[string]any{}
	if c.Context.Device != "" {
		rc["device"] = string(c.Context.Device)
	}
	if c.Context.Language != "" {
		loc := c.Context.Language
		if c.Context.Country != "" {
			loc += "-" + c.Context.Country
		}
		rc["locale"] = loc
	}
	if c.Context.LocalTime {
		mins := int((offset + c.TS.Sub(now)).Round(time.Minute) / time.Minute)
		if mins < -12*60 || mins > 14*60 {
			mins = int(offset / time.Minute)
		}
		rc["utc_offset_minutes"] = mins
	}
	b, _ := json.Marshal(map[string]any{"user_id": c.User, "k": 10, "context": rc})
	return string(b)
}

func (q *liveQuality) result() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return qualityLine(q.eval.Result(), q.errs)
}

// qualityLine is the quality against the ground truth with 95% intervals:
// Wilson's for the hit rate (a proportion), the normal approximation for
// the mean NDCG.
func qualityLine(r sim.Quality, failed int) string {
	hrLo, hrHi := r.HRInterval()
	nLo, nHi := r.NDCGInterval()
	return fmt.Sprintf("HR@%d %.3f (95%% Wilson interval %.3f–%.3f), NDCG@%d %.3f (95%% interval %.3f–%.3f) over %s (mean %.0f live streamers each, %s, %s)",
		r.K, r.HR, hrLo, hrHi, r.K, r.NDCG, nLo, nHi, plural(r.Choices, "decision"), r.MeanLive, plural(r.NotLive, "not-live recommendation"), plural(failed, "failed request"))
}

// liveSync lets a decision be scored against a service that knows the live
// set the simulator had before it: the world runs faster than real time,
// so the consumer's delay of a few milliseconds is seconds of simulated
// time, in which streams end. Before each decision it waits (at most
// within) until the service's live view holds the last start or end of
// each streamer whose stream started or ended since the previous decision.
type liveSync struct {
	state interface {
		FeaturesOf(lr.StreamerID) (live.Features, bool)
	}
	within time.Duration
	last   map[lr.StreamerID]lr.Event
}

// note records a published event.
func (l *liveSync) note(e lr.Event) {
	if e.Type != lr.EventStreamStarted && e.Type != lr.EventStreamEnded {
		return
	}
	if l.last == nil {
		l.last = map[lr.StreamerID]lr.Event{}
	}
	l.last[e.StreamerID] = e
}

// wait returns once the live view holds every noted event, within has
// passed, or ctx ended; it forgets the noted events.
func (l *liveSync) wait(ctx context.Context) {
	deadline := time.Now().Add(l.within)
	for id, e := range l.last {
		for !l.holds(e) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		delete(l.last, id)
	}
}

func (l *liveSync) holds(e lr.Event) bool {
	f, live := l.state.FeaturesOf(e.StreamerID)
	if e.Type == lr.EventStreamStarted {
		return live && f.StreamID == e.StreamID
	}
	return !live || f.StreamID != e.StreamID
}

func runLiveWorld(ctx context.Context, w *sim.World, prod *events.Producer, q *liveQuality, synced *liveSync, sched liveSchedule, caughtUp func()) error {
	var batch []lr.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := prod.Publish(ctx, batch...)
		batch = batch[:0]
		return err
	}
	emit := sched.pace(ctx, func(e lr.Event) error {
		batch = append(batch, e)
		synced.note(e)
		if len(batch) >= 500 {
			return flush()
		}
		return nil
	}, flush, caughtUp)
	choice := func(c sim.Choice) error {
		if err := flush(); err != nil { // the service should see everything before the decision
			return err
		}
		synced.wait(ctx)
		return q.choice(c)
	}
	_, err := w.RunLive(ctx, sched.simFrom, sched.simFrom.Add(7*24*time.Hour), emit, choice)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func devReport(ctx context.Context, app *App, db *postgres.DB, svc *service, base, token string, c devConfig, q *liveQuality) error {
	out := app.Stdout
	fmt.Fprintf(out, "\n================ liverecall dev report ================\n")
	fmt.Fprintf(out, "live streamers now: %d (of %d in the world); users tracked: %d\n", svc.state.Live(), c.streamers, svc.state.Users())
	if c.liveSpeed > 1 {
		fmt.Fprintf(out, "the live world ran at %gx real time until now, and runs in real time from now on\n", c.liveSpeed)
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		mv, err := db.ActiveModel(ctx, kind)
		if err != nil {
			continue
		}
		var m struct {
			Eval struct {
				All struct {
					HR10   float64 `json:"hr@10"`
					NDCG10 float64 `json:"ndcg@10"`
					N      int     `json:"n"`
				} `json:"all"`
			} `json:"eval"`
			TrainS float64 `json:"train_s"`
		}
		_ = json.Unmarshal(mv.Metrics, &m)
		fmt.Fprintf(out, "model %s: %s, held-out HR@10 %.3f NDCG@10 %.3f (availability-aware, %d watches), trained in %.1f s\n",
			kind, mv.Version, m.Eval.All.HR10, m.Eval.All.NDCG10, m.Eval.All.N, m.TrainS)
	}

	// A few users' recommendations with the reason for each.
	client := &http.Client{Timeout: 5 * time.Second}
	rng := mrand.New(mrand.NewPCG(c.seed, 77))
	fmt.Fprintln(out, "\nrecommendations (top 5) and why:")
	for i := 0; i < 3; i++ {
		u := sim.UserID(rng.IntN(c.users))
		r, err := devRecall(ctx, client, base, u, 5, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  user %d:\n", u)
		for _, it := range r.Items {
			fmt.Fprintf(out, "    streamer %-7d score %.3f via %-22s %s\n", it.StreamerID, it.Score, strings.Join(it.Channels, "+"), why(it))
		}
	}

	// Latency: requests at a steady rate from one client.
	var lat []time.Duration
	errs := 0
	for i := 0; i < c.requests; i++ {
		u := sim.UserID(rng.IntN(c.users))
		t0 := time.Now()
		if _, err := devRecall(ctx, client, base, u, 20, false); err != nil {
			errs++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		p := func(x float64) float64 { return float64(lat[int(x*float64(len(lat)-1))].Microseconds()) / 1000 }
		fmt.Fprintf(out, "\nlatency over %s (k=20, one client, loopback HTTP): p50 %.2f ms, p95 %.2f ms, p99 %.2f ms; %s\n",
			plural(len(lat), "recall request"), p(.5), p(.95), p(.99), plural(errs, "error"))
	}
	fmt.Fprintf(out, "quality against the simulator's ground truth so far: %s\n", q.result())
	fmt.Fprintf(out, "\noperator console: %s/debug#user_id=%d&token=%s\n", base, sim.UserID(0), token)
	fmt.Fprintf(out, "admin token: %s (status: curl -H 'Authorization: Bearer %s' %s/v1/admin/status)\n", token, token, base)
	fmt.Fprintf(out, "========================================================\n")
	return nil
}

func devRecall(ctx context.Context, client *http.Client, base string, u lr.UserID, k int, debug bool) (api.RecallResponse, error) {
	var r api.RecallResponse
	body, _ := json.Marshal(map[string]any{"user_id": u, "k": k, "debug": debug})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/recall", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return r, fmt.Errorf("recall: %d %s", resp.StatusCode, b)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// why is an item's explanation: its largest contributions to the score
// (the positive ones come first in Why), then its live stream's audience,
// category and age.
func why(it api.RecallItem) string {
	if it.Debug == nil {
		return ""
	}
	var parts []string
	for _, c := range it.Debug.Why {
		if len(parts) == 3 {
			break
		}
		if math.Abs(c.Effect) >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %+.2f", c.Feature, c.Effect))
		}
	}
	viewers, category, age := devLive(it)
	return fmt.Sprintf("(%s; %s, %s, live %s)", strings.Join(parts, ", "), plural(viewers, "viewer"), category, humanDuration(age))
}

// devLive is what the report reads of an item's live features in a debug
// response, in this one place (the debug response's field names and units
// are the API's to change).
func devLive(it api.RecallItem) (viewers int, category string, age time.Duration) {
	l := it.Debug.Live
	return l.Viewers, l.Category, l.Age()
}

// plural is n and the noun, in the plural unless n is 1 ("1 viewer", "0
// viewers", "2 watch sessions"); nouns ending in s, x, ch or sh take "es".
func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	for _, end := range []string{"s", "x", "ch", "sh"} {
		if strings.HasSuffix(noun, end) {
			return fmt.Sprintf("%d %ses", n, noun)
		}
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// humanDuration writes d for people, to the minute: "2h50m", "3d4h",
// "45m"; under a minute "<1m" (never negative).
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "<1m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	default:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
}
