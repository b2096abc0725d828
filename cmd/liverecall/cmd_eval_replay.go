package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/replay"
)

// evalReplay replays the PostgreSQL history through the serving code
// (package replay) and prints its figures: a table, or one JSON object.
// The models are trained here on the history before the held-out period
// (from, or the start of the most recent holdout share of watch sessions);
// the bans and blocks are those in the database now. With foldIn, the row
// full+foldin is the full system with MF user vectors folded in from the
// session at each decision.
func evalReplay(ctx context.Context, app *App, dbURL string, from time.Time, holdout float64, evalMax int, models []string, p embed.Params, foldIn, asJSON bool) error {
	for _, n := range models {
		if n != "als" && n != "ncf" {
			fmt.Fprintf(app.Stderr, "liverecall eval: --format replay takes --model als or als,ncf, not %q\n", n)
			return errUsage
		}
	}
	if !slices.Contains(models, "als") {
		fmt.Fprintln(app.Stderr, "liverecall eval: --format replay needs --model als (the mf channel), optionally with ncf")
		return errUsage
	}
	if from.IsZero() && (holdout <= 0 || holdout >= 1) {
		fmt.Fprintf(app.Stderr, "liverecall eval: --holdout must be in (0, 1), got %v\n", holdout)
		return errUsage
	}
	cfg := liveEvalConfig(p)
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	h, err := readReplayHistory(ctx, db)
	if err != nil {
		return err
	}
	if from.IsZero() {
		if len(h.Watches) < 2 {
			return lr.Errorf(lr.EINVALID, "too little data: %d watch sessions in the database", len(h.Watches))
		}
		starts := make([]time.Time, len(h.Watches))
		for i, w := range h.Watches {
			starts[i] = w.Start
		}
		sort.Slice(starts, func(a, b int) bool { return starts[a].Before(starts[b]) })
		from = starts[min(len(starts)-1, int(float64(len(starts))*(1-holdout)))]
	}
	integrity := recall.NewIntegrityCache(db, app.Log)
	if err := integrity.Refresh(ctx); err != nil {
		return err
	}
	rc := replay.Config{HoldoutFrom: from, MaxDecisions: evalMax, Models: models, Train: &cfg, Integrity: integrity, Log: app.Log}
	if foldIn {
		rc.Rerankers = []replay.Reranker{{Name: replayFoldInRow, FoldIn: true}}
	}
	done := func() {}
	if isTerminal(app.Stderr) {
		var last time.Time
		rc.Progress = func(n, total int) {
			if time.Since(last) > 200*time.Millisecond || n == total {
				last = time.Now()
				fmt.Fprintf(app.Stderr, "\rreplaying: %d of %d decisions", n, total)
			}
		}
		done = func() { fmt.Fprintln(app.Stderr) }
	}
	app.Log.Info("replay", "holdout_from", from.Format(time.RFC3339), "watches", len(h.Watches), "streams", len(h.Streams))
	rep, err := replay.Run(ctx, h, rc)
	done()
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(app.Stdout, string(b))
		return err
	}
	writeReplayTable(app, rep)
	return nil
}

// replayFoldInRow is the row of eval --format replay --foldin.
const replayFoldInRow = "full+foldin"

func writeReplayTable(app *App, rep *replay.Report) {
	w := app.Stdout
	fmt.Fprintf(w, "replay: %d watch sessions train (before %s), %d held out; %d decisions scored (%d not live at their start), %.1f streamers live on average\n\n",
		rep.TrainWatches, rep.HoldoutFrom.Format(time.RFC3339), rep.HeldWatches, rep.Decisions, rep.NotLive, rep.MeanLive)
	fmt.Fprintf(w, "%-14s %-8s %6s %6s %6s %7s | %8s %8s %6s | %8s %8s %6s | %9s %6s\n", "ranker", "kind", "HR@1", "HR@5", "HR@10", "NDCG@10",
		"rep HR@1", "rep HR10", "rep n", "new HR@1", "new HR10", "new n", "nuser HR10", "nuser n")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "%-14s %-8s %6.4f %6.4f %6.4f %7.4f | %8.4f %8.4f %6d | %8.4f %8.4f %6d | %10.4f %7d\n", r.Name, r.Kind, r.All.HR1, r.All.HR5, r.All.HR10, r.All.NDCG10,
			r.Repeat.HR1, r.Repeat.HR10, r.Repeat.N, r.New.HR1, r.New.HR10, r.New.N, r.NewUsers.HR10, r.NewUsers.N)
	}
	fmt.Fprintln(w, "\nrep: repeat targets (watched before); new: new targets; nuser: decisions of users without a nightly MF vector (new since the models were trained)")
	fmt.Fprintf(w, "\ntrained in %.1f s, replayed in %.1f s\n", rep.TrainS, rep.ReplayS)
}

// readReplayHistory reads the whole history: streams, watch sessions,
// gifts and the active follows.
func readReplayHistory(ctx context.Context, db *postgres.DB) (*replay.History, error) {
	h := &replay.History{}
	if err := db.TrainingStreams(ctx, time.Time{}, func(s postgres.StreamRow) error {
		h.Streams = append(h.Streams, replay.Stream{ID: s.ID, Streamer: s.StreamerID, Category: s.Category, Start: s.StartedAt, End: s.EndedAt})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingWatches(ctx, time.Time{}, func(w postgres.WatchRow) error {
		h.Watches = append(h.Watches, replay.Watch{User: w.UserID, Streamer: w.StreamerID, Stream: w.StreamID, Start: w.StartedAt, End: w.EndedAt})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingGifts(ctx, time.Time{}, func(g postgres.GiftRow) error {
		h.Gifts = append(h.Gifts, replay.Gift{User: g.UserID, Streamer: g.StreamerID, Stream: g.StreamID, Amount: g.Amount, At: g.SentAt})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingFollows(ctx, func(f postgres.FollowRow) error {
		h.Follows = append(h.Follows, replay.Follow{User: f.UserID, Streamer: f.StreamerID, At: f.CreatedAt})
		return nil
	}); err != nil {
		return nil, err
	}
	return h, nil
}
