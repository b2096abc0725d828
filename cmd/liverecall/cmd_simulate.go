package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/sim"
)

var (
	sSimDays       = defSetting(setting{"days", "LIVERECALL_SIM_DAYS", "7", "days of history to simulate"})
	sSimStreamers  = defSetting(setting{"streamers", "LIVERECALL_SIM_STREAMERS", "2000", "streamers in the simulated world"})
	sSimUsers      = defSetting(setting{"users", "LIVERECALL_SIM_USERS", "20000", "users in the simulated world"})
	sSimSeed       = defSetting(setting{"seed", "LIVERECALL_SIM_SEED", "1", "seed of the simulated world (same seed and start, same history)"})
	sSimStart      = defSetting(setting{"start", "LIVERECALL_SIM_START", "", "first day of the simulated history, YYYY-MM-DD (default: with --to-postgres, --days days before today, UTC; otherwise the start recorded in the database at --database-url by the run that loaded the same world's history, else --days days before today)"})
	sSimToPostgres = defSetting(setting{"to-postgres", "LIVERECALL_SIM_TO_POSTGRES", "false", "write the history into PostgreSQL (users, streamers, streams, watch_sessions, gifts, follows)"})
	sSimReplace    = defSetting(setting{"replace", "LIVERECALL_SIM_REPLACE", "false", "with --to-postgres, empty the history tables first"})
	sSimEventsOut  = defSetting(setting{"events-out", "LIVERECALL_SIM_EVENTS_OUT", "", "also write the events as JSON lines to this file (- for stdout)"})
	sSimToKafka    = defSetting(setting{"to-kafka", "LIVERECALL_SIM_TO_KAFKA", "false", "also publish the events to the events topic on --kafka-brokers, each record stamped with its event's time (with --live, only the live phase: the history belongs in PostgreSQL)"})
	sSimSpeed      = defSetting(setting{"speed", "LIVERECALL_SIM_SPEED", "0", "pace the history at this multiple of real time (0: as fast as possible)"})
	sSimContext    = defSetting(setting{"context", "LIVERECALL_SIM_CONTEXT", "false", "give the simulated users request context that shapes what they watch: a local time, a device per visit, a language and country (streams carry their streamer's language); another world than without it"})
	sSimLive       = defSetting(setting{"live", "LIVERECALL_SIM_LIVE", "0s", "after the history, keep the world running from now, in real time, for this long (Kafka and/or --events-out; Ctrl-C ends it)"})
)

func init() {
	register(&command{name: "simulate", summary: "simulate days of live-streaming history (to PostgreSQL and/or JSON lines)", run: runSimulate})
}

type simConfig struct {
	days, streamers, users int
	seed                   uint64
	start                  time.Time
	toPostgres, replace    bool
	eventsOut              string
	databaseURL            string
	toKafka                bool
	brokers                []string
	topic                  string
	speed                  float64
	live                   time.Duration
	context                bool // sim.Config.Context
	// liveFrom, when set, is told the start of the live phase before its
	// first event.
	liveFrom func(time.Time)
}

func runSimulate(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "simulate")
	dbURL := f.String(sDatabaseURL)
	days, streamers, users := f.Int(sSimDays), f.Int(sSimStreamers), f.Int(sSimUsers)
	seed := f.Int(sSimSeed)
	start := f.String(sSimStart)
	toPG, replace := f.Bool(sSimToPostgres), f.Bool(sSimReplace)
	out := f.String(sSimEventsOut)
	toKafka, brokers, topic := f.Bool(sSimToKafka), f.String(sKafkaBrokers), f.String(sEventsTopic)
	speed, live := f.Float(sSimSpeed), f.Duration(sSimLive)
	withContext := f.Bool(sSimContext)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		fmt.Fprintf(app.Stderr, "liverecall simulate: unexpected argument %q\n", f.Arg(0))
		return errUsage
	}
	c := simConfig{days: *days, streamers: *streamers, users: *users, seed: uint64(*seed),
		toPostgres: *toPG, replace: *replace, eventsOut: *out, databaseURL: *dbURL,
		toKafka: *toKafka, brokers: splitCommaList(*brokers), speed: *speed, live: *live, context: *withContext}
	if topics := splitCommaList(*topic); len(topics) > 0 {
		c.topic = topics[0]
	}
	switch {
	case c.toKafka && len(c.brokers) == 0:
		return lr.Errorf(lr.EINVALID, "--to-kafka: no Kafka brokers: set --kafka-brokers or LIVERECALL_KAFKA_BROKERS")
	case c.live < 0 || c.speed < 0:
		return lr.Errorf(lr.EINVALID, "--live %s --speed %v: want non-negative values", c.live, c.speed)
	case c.live > 0 && !c.toKafka && c.eventsOut == "":
		return lr.Errorf(lr.EINVALID, "--live: the live events need somewhere to go: --to-kafka or --events-out")
	case c.days < 1 || c.days > 3650:
		return lr.Errorf(lr.EINVALID, "--days %d: want 1 to 3650", c.days)
	case c.streamers < 1 || c.users < 1:
		return lr.Errorf(lr.EINVALID, "--streamers %d --users %d: want at least one of each", c.streamers, c.users)
	case *seed < 0:
		return lr.Errorf(lr.EINVALID, "--seed %d: want a non-negative seed", *seed)
	}
	if *start == "" {
		c.start = defaultSimStart(c.days)
		if !c.toPostgres {
			if w, ok := recordedWorldFor(ctx, app, c); ok {
				c.start = w.Start
				app.Log.Info("simulating from the start of the world whose history the database holds", "start", w.Start.Format(time.DateOnly))
			}
		}
	} else {
		t, err := time.Parse(time.DateOnly, *start)
		if err != nil {
			return lr.Errorf(lr.EINVALID, "--start %q: want a date like 2026-01-31", *start)
		}
		c.start = t
	}
	return simulate(ctx, app, c)
}

// defaultSimStart is the default first day of a history of days days: days
// days before today (UTC), so that the history ends today.
func defaultSimStart(days int) time.Time {
	return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
}

// recordedWorld returns the simulated world recorded in the database at url
// by the run that loaded its history, and false if there is none or the
// database does not answer within a few seconds (a run that only writes
// events needs no database).
func recordedWorld(ctx context.Context, app *App, url string) (postgres.SimWorld, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, url)
	if err != nil {
		app.Log.Debug("no recorded simulated world: database not available", "err", err)
		return postgres.SimWorld{}, false
	}
	defer db.Close()
	w, ok, err := db.SimWorldRecorded(ctx)
	if err != nil {
		app.Log.Debug("no recorded simulated world", "err", err)
	}
	return w, ok
}

// recordedWorldFor is recordedWorld at c's database when it is c's world
// (seed, size, request context).
func recordedWorldFor(ctx context.Context, app *App, c simConfig) (postgres.SimWorld, bool) {
	w, ok := recordedWorld(ctx, app, c.databaseURL)
	if !ok || w.Seed != c.seed || w.Streamers != c.streamers || w.Users != c.users || w.Context != c.context {
		return postgres.SimWorld{}, false
	}
	return w, true
}

func simulate(ctx context.Context, app *App, c simConfig) error {
	began := time.Now()
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: c.start, Context: c.context})
	if err != nil {
		return err
	}
	from := w.Config().Start
	to := from.AddDate(0, 0, c.days)
	summary := app.Stdout

	var emit []func(lr.Event) error
	if c.eventsOut != "" {
		fileEmit, closeFile, err := eventsFile(app, c.eventsOut)
		if err != nil {
			return err
		}
		defer closeFile()
		if c.eventsOut == "-" {
			summary = app.Stderr
		}
		emit = append(emit, fileEmit)
	}
	var kafkaSent int64
	flush := func() error { return nil }
	var kafkaEmit func(lr.Event) error
	if c.toKafka {
		// Each record is stamped with its event's time, so a replica that
		// starts replays only the events of its lookback, never the whole
		// history as if it had just happened. The announcements of the live
		// phase (the streams and viewers already live, with their original
		// times) are stamped with the live phase's start: they are news then.
		var liveFrom time.Time
		stamp := func(e lr.Event) time.Time {
			if e.TS.Before(liveFrom) {
				return liveFrom
			}
			return e.TS
		}
		var closeKafka func()
		kafkaEmit, flush, closeKafka = kafkaPublisher(ctx, c, stamp, &kafkaSent)
		defer closeKafka()
		if c.live > 0 {
			// The history is not published: the live topic carries what
			// happens live; the history goes to PostgreSQL (--to-postgres,
			// here or in an earlier run).
			c.liveFrom = func(t time.Time) { liveFrom = t }
		} else {
			emit = append(emit, kafkaEmit)
		}
	}
	var (
		loader *postgres.HistoryLoader
		hist   *sim.History
	)
	if c.toPostgres {
		var closeDB func()
		loader, hist, closeDB, err = historyLoader(ctx, app, c, w, to)
		if err != nil {
			return err
		}
		defer closeDB()
	}

	nextDay := from.Add(24 * time.Hour)
	all := func(e lr.Event) error {
		for _, fn := range emit {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	stats, err := w.Run(ctx, from, to, sim.Pace(ctx, from, c.speed, func(e lr.Event) error {
		if !e.TS.Before(nextDay) {
			app.Log.Info("simulated day", "day", nextDay.Add(-24*time.Hour).Format(time.DateOnly), "elapsed", time.Since(began).Round(time.Millisecond).String())
			nextDay = nextDay.Add(24 * time.Hour)
		}
		if hist != nil {
			if err := hist.Add(e); err != nil {
				return err
			}
		}
		return all(e)
	}, flush), nil)
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	var counts postgres.HistoryCounts
	if loader != nil {
		err := hist.Flush(func(r sim.FollowRecord) error {
			return loader.Follow(postgres.FollowRow{UserID: r.User, StreamerID: r.Streamer, Active: r.Active, CreatedAt: r.Created, UpdatedAt: r.Updated})
		})
		if err != nil {
			return err
		}
		if counts, err = loader.Close(); err != nil {
			return err
		}
		if err := recordWorld(ctx, c, from); err != nil {
			return err
		}
	}

	printSummary(summary, c, from, to, began, stats, counts, loader != nil, kafkaSent)
	if c.live > 0 {
		if kafkaEmit != nil {
			emit = append(emit, kafkaEmit)
		}
		return simulateLive(ctx, app, c, w, to, all, flush, &kafkaSent, summary)
	}
	return nil
}

// recordWorld records in the database the world whose history was just
// loaded, for the runs that go on with it (see recordedWorld).
func recordWorld(ctx context.Context, c simConfig, start time.Time) error {
	db, err := postgres.Open(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.SetSimWorld(ctx, postgres.SimWorld{Seed: c.seed, Start: start, Days: c.days, Streamers: c.streamers, Users: c.users, Context: c.context})
}

// eventsFile returns an emitter writing events as JSON lines to path ("-":
// stdout) and the function that flushes and closes it.
func eventsFile(app *App, path string) (func(lr.Event) error, func(), error) {
	var wr io.Writer = app.Stdout
	closeFile := func() {}
	if path != "-" {
		fh, err := os.Create(path)
		if err != nil {
			return nil, nil, lr.Errorf(lr.EINVALID, "--events-out: %v", err)
		}
		wr, closeFile = fh, func() { fh.Close() }
	}
	bw := bufio.NewWriterSize(wr, 1<<16)
	var line []byte
	emit := func(e lr.Event) error {
		line = append(events.AppendEncode(line[:0], e), '\n')
		_, err := bw.Write(line)
		return err
	}
	return emit, func() { bw.Flush(); closeFile() }, nil
}

// kafkaPublisher returns an emitter publishing events to c's topic in
// batches of 1000, each record stamped by stamp, the function that publishes the batch held (counting
// what it published in *sent), and the one that closes the producer.
func kafkaPublisher(ctx context.Context, c simConfig, stamp func(lr.Event) time.Time, sent *int64) (emit func(lr.Event) error, flush func() error, closeFn func()) {
	p := events.NewProducer(events.ProducerConfig{Brokers: c.brokers, Topic: c.topic, Timestamp: stamp})
	batch := make([]lr.Event, 0, 1000)
	flush = func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := p.Publish(ctx, batch...); err != nil {
			return err
		}
		*sent += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	emit = func(e lr.Event) error {
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	}
	return emit, flush, func() { p.Close() }
}

// historyLoader opens the database, empties its history first when c says
// so (refusing otherwise to add to one), loads the world's users and the
// streamers who debut before to, and returns the loader with the History
// that feeds it the simulated streams, watches and gifts, and the function
// that aborts an unfinished load and closes the database.
func historyLoader(ctx context.Context, app *App, c simConfig, w *sim.World, to time.Time) (*postgres.HistoryLoader, *sim.History, func(), error) {
	db, err := postgres.Open(ctx, c.databaseURL)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*postgres.HistoryLoader, *sim.History, func(), error) {
		db.Close()
		return nil, nil, nil, err
	}
	have, err := db.CountHistory(ctx)
	if err != nil {
		return fail(err)
	}
	if have != (postgres.HistoryCounts{}) {
		if !c.replace {
			return fail(lr.Errorf(lr.ECONFLICT, "the database already holds history (%d users, %d streamers, %d watch sessions); pass --replace to empty the history tables first", have.Users, have.Streamers, have.Watches))
		}
		if err := db.TruncateHistory(ctx); err != nil {
			return fail(err)
		}
		app.Log.Info("emptied the history tables", "users", have.Users, "streamers", have.Streamers, "watch_sessions", have.Watches)
	}
	loader, err := db.LoadHistory(ctx)
	if err != nil {
		return fail(err)
	}
	closeFn := func() {
		loader.Abort() // a no-op after Close
		db.Close()
	}
	err = w.Users(func(u sim.User) error {
		return loader.User(postgres.UserRow{ID: u.ID, Language: u.Language, Country: u.Country, CreatedAt: u.CreatedAt})
	})
	if err == nil {
		err = w.Streamers(func(s sim.Streamer) error {
			if !s.CreatedAt.Before(to) {
				return nil // debuts after the simulated window
			}
			return loader.Streamer(postgres.StreamerRow{ID: s.ID, Name: s.Name, Category: s.Category, Language: s.Language, CreatedAt: s.CreatedAt})
		})
	}
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	hist := &sim.History{
		Stream: func(r sim.StreamRecord) error {
			return loader.Stream(postgres.StreamRow{ID: r.ID, StreamerID: r.Streamer, Category: r.Category, Title: r.Title, StartedAt: r.Started, EndedAt: r.Ended})
		},
		Watch: func(r sim.WatchRecord) error {
			return loader.Watch(postgres.WatchRow{EventID: r.EventID, UserID: r.User, StreamID: r.Stream, StreamerID: r.Streamer, StartedAt: r.Started, EndedAt: r.Ended, Seconds: r.Seconds})
		},
		Gift: func(r sim.GiftRecord) error {
			return loader.Gift(postgres.GiftRow{EventID: r.EventID, UserID: r.User, StreamerID: r.Streamer, StreamID: r.Stream, Amount: r.Amount, SentAt: r.At})
		},
	}
	return loader, hist, closeFn, nil
}

// simulateLive runs the live phase after the history, from now (or from
// the history's end if that is later) for c.live, into all. It goes to
// Kafka and/or the file, not to PostgreSQL (the sink records it there when
// it runs).
func simulateLive(ctx context.Context, app *App, c simConfig, w *sim.World, to time.Time, all func(lr.Event) error, flush func() error, kafkaSent *int64, summary io.Writer) error {
	liveFrom := time.Now().UTC().Truncate(time.Millisecond)
	if liveFrom.Before(to) {
		liveFrom = to
	}
	liveTo := liveFrom.Add(c.live)
	if c.liveFrom != nil {
		c.liveFrom(liveFrom)
	}
	app.Log.Info("live simulation", "from", liveFrom.Format(time.RFC3339), "for", c.live.String())
	sent := *kafkaSent
	lstats, err := w.RunLive(ctx, liveFrom, liveTo, sim.Pace(ctx, liveFrom, 1, all, flush), nil)
	if err == nil {
		err = flush()
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(summary, "live from %s for %s: %s (%s already live announced, with %s already watching), %s, repeat share %.1f%%",
		liveFrom.Format(time.RFC3339), time.Since(liveFrom).Round(time.Second), plural(lstats.TotalEvents()+2*lstats.Reopened+lstats.ReopenedViewers, "event"),
		plural(lstats.Reopened, "stream"), plural(lstats.ReopenedViewers, "viewer"), plural(lstats.Choices, "choice"), 100*lstats.RepeatShare())
	if c.toKafka {
		fmt.Fprintf(summary, ", %d published", *kafkaSent-sent)
	}
	fmt.Fprintln(summary)
	return nil
}

func printSummary(summary io.Writer, c simConfig, from, to time.Time, began time.Time, stats sim.Stats, counts postgres.HistoryCounts, pg bool, kafkaSent int64) {
	fmt.Fprintf(summary, "simulated %s (%s to %s), seed %d: %d streamers, %d users, in %s\n",
		plural(c.days, "day"), from.Format(time.DateOnly), to.Format(time.DateOnly), c.seed, c.streamers, c.users, time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(summary, "events: %d", stats.TotalEvents())
	types := make([]string, 0, len(stats.Events))
	for t := range stats.Events {
		types = append(types, string(t))
	}
	slices.Sort(types)
	for _, t := range types {
		fmt.Fprintf(summary, ", %s %d", t, stats.Events[lr.EventType(t)])
	}
	fmt.Fprintln(summary)
	fmt.Fprintf(summary, "choices: %d, repeat share %.1f%%, watched %.0f hours\n", stats.Choices, 100*stats.RepeatShare(), float64(stats.WatchSeconds)/3600)
	if pg {
		fmt.Fprintf(summary, "postgres: %d users, %d streamers, %d streams, %d watch sessions, %d gifts, %d follows\n",
			counts.Users, counts.Streamers, counts.Streams, counts.Watches, counts.Gifts, counts.Follows)
	}
	switch {
	case c.toKafka && c.live > 0:
		fmt.Fprintf(summary, "kafka: the history is not published (the live phase is); %s on %s\n", c.topic, strings.Join(c.brokers, ","))
	case c.toKafka:
		fmt.Fprintf(summary, "kafka: %d events published to %s on %s, each stamped with its event's time\n", kafkaSent, c.topic, strings.Join(c.brokers, ","))
	}
}
