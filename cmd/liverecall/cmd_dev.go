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
	"slices"
	"strings"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/embedded"
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
}

func runDev(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "dev")
	dbURL := f.FlagSet.String("database-url", firstNonEmpty(app.Getenv("DATABASE_URL"), app.Getenv("LIVERECALL_DATABASE_URL"), devDatabase),
		"PostgreSQL connection URL; the database is created if missing [$DATABASE_URL]")
	addr := f.FlagSet.String("http-addr", firstNonEmpty(app.Getenv("LIVERECALL_HTTP_ADDR"), "127.0.0.1:8080"), "address the HTTP API listens on [$LIVERECALL_HTTP_ADDR]")
	brokers := f.String(sKafkaBrokers)
	days, streamers, users, seed := f.Int(sSimDays), f.Int(sSimStreamers), f.Int(sSimUsers), f.Int(sSimSeed)
	ncfEpochs := f.FlagSet.Int("ncf-epochs", 0, "NeuMF epochs (0: the tuned default)")
	reportAfter := f.FlagSet.Duration("report-after", 20*time.Second, "how long live traffic runs before the report")
	requests := f.FlagSet.Int("requests", 2000, "recall requests sent to measure latency")
	fresh := f.FlagSet.Bool("fresh", false, "simulate and train again even if the database already has history and models")
	if err := f.Parse(args); err != nil {
		return err
	}
	return dev(ctx, app, devConfig{databaseURL: *dbURL, httpAddr: *addr, brokers: splitCommaList(*brokers), days: *days, streamers: *streamers,
		users: *users, seed: uint64(*seed), ncfEpochs: *ncfEpochs, reportAfter: *reportAfter, requests: *requests, fresh: *fresh})
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
			embedded.Topic{Name: events.DefaultDeadLetterTopic, Partitions: 1}, embedded.Topic{Name: events.DefaultImpressionTopic, Partitions: 4})
		if err != nil {
			return err
		}
		defer k.Close()
		c.brokers = k.Brokers()
		step("kafka: no brokers configured, started an in-process Kafka-protocol broker at %s", c.brokers[0])
	} else {
		step("kafka: using %s", strings.Join(c.brokers, ","))
	}

	// The same world (seed, size, start) serves the history and the live part.
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -c.days)
	have, err := db.CountHistory(ctx)
	if err != nil {
		return err
	}
	if c.fresh || have.Watches == 0 {
		step("simulating %d days of history: %d streamers, %d users (seed %d)", c.days, c.streamers, c.users, c.seed)
		if err := simulate(ctx, app, simConfig{days: c.days, streamers: c.streamers, users: c.users, seed: c.seed, start: start,
			toPostgres: true, replace: true, databaseURL: c.databaseURL}); err != nil {
			return err
		}
	} else {
		step("history already in the database (%d watch sessions); --fresh simulates again", have.Watches)
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

	token := randomToken()
	cfg, err := parseServiceFlags(app, "dev", []string{"--database-url", c.databaseURL, "--http-addr", c.httpAddr,
		"--kafka-brokers", strings.Join(c.brokers, ","), "--admin-token", token})
	if err != nil {
		return err
	}
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

	// The world goes on live, in real time: streams already live now are
	// announced first, then events follow the clock. Every user decision is
	// scored against what the service recommends at that moment.
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start})
	if err != nil {
		return err
	}
	prod := events.NewProducer(events.ProducerConfig{Brokers: c.brokers})
	defer prod.Close()
	q := &liveQuality{eval: sim.NewEvaluator(10), client: &http.Client{Timeout: 2 * time.Second}, url: base + "/v1/recall"}
	liveDone := make(chan error, 1)
	go func() { liveDone <- runLiveWorld(svcCtx, w, prod, q) }()

	if err := waitReady(ctx, base, 3*time.Minute); err != nil {
		return err
	}
	step("ready; letting live traffic run for %s", c.reportAfter)
	select {
	case <-time.After(c.reportAfter):
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
	mu     sync.Mutex
	eval   *sim.Evaluator
	client *http.Client
	url    string
	errs   int
}

func (q *liveQuality) choice(c sim.Choice) error {
	body := fmt.Sprintf(`{"user_id":%d,"k":10}`, c.User)
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

func (q *liveQuality) result() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.eval.Result()
	return fmt.Sprintf("HR@10 %.3f, NDCG@10 %.3f over %d decisions (mean %.0f live streamers each, %d not-live recommendations, %d failed requests)",
		r.HR, r.NDCG, r.Choices, r.MeanLive, r.NotLive, q.errs)
}

func runLiveWorld(ctx context.Context, w *sim.World, prod *events.Producer, q *liveQuality) error {
	now := time.Now()
	var batch []lr.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := prod.Publish(ctx, batch...)
		batch = batch[:0]
		return err
	}
	emit := sim.Pace(ctx, now, 1, func(e lr.Event) error {
		batch = append(batch, e)
		if e.Type == lr.EventStreamStarted && e.TS.Before(now) {
			// A stream already live when the world goes live was started
			// long ago: a heartbeat now keeps expiry from ending it before
			// its own next heartbeat.
			batch = append(batch, lr.Event{ID: e.ID + "-hb", Type: lr.EventStreamHeartbeat, TS: now, StreamerID: e.StreamerID, StreamID: e.StreamID, V: lr.EventVersion})
		}
		if len(batch) >= 500 {
			return flush()
		}
		return nil
	}, flush)
	choice := func(c sim.Choice) error {
		if err := flush(); err != nil { // the service should see everything before the decision
			return err
		}
		return q.choice(c)
	}
	_, err := w.RunLive(ctx, now, now.Add(7*24*time.Hour), emit, choice)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func devReport(ctx context.Context, app *App, db *postgres.DB, svc *service, base, token string, c devConfig, q *liveQuality) error {
	out := app.Stdout
	fmt.Fprintf(out, "\n================ liverecall dev report ================\n")
	fmt.Fprintf(out, "live streamers now: %d (of %d in the world); users tracked: %d\n", svc.state.Live(), c.streamers, svc.state.Users())
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
		fmt.Fprintf(out, "\nlatency over %d recall requests (k=20, one client, loopback HTTP): p50 %.2f ms, p95 %.2f ms, p99 %.2f ms; %d errors\n",
			len(lat), p(.5), p(.95), p(.99), errs)
	}
	fmt.Fprintf(out, "quality against the simulator's ground truth so far: %s\n", q.result())
	fmt.Fprintf(out, "\ndebug page: %s/debug#user_id=%d&token=%s\n", base, sim.UserID(0), token)
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

func why(it api.RecallItem) string {
	if it.Debug == nil {
		return ""
	}
	var parts []string
	for _, c := range it.Debug.Why {
		if len(parts) == 2 {
			break
		}
		if math.Abs(c.Effect) >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %+.2f", c.Feature, c.Effect))
		}
	}
	return fmt.Sprintf("(%s; %d viewers, %s, live %s)", strings.Join(parts, ", "), it.Debug.Live.Viewers, it.Debug.Live.Category, it.Debug.Live.Age().Round(time.Minute))
}
