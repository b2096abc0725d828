package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

func init() {
	register(&command{name: "import", summary: "import user and streamer embeddings made elsewhere (CSV or Parquet), validate, stage and activate them", run: runImport})
}

func runImport(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "import")
	j := newModelJobFlags(f)
	// --users and --streamers name files here; simulate's settings of the
	// same flag names (counts) are not read from the environment by import.
	usersPath := f.FlagSet.String("users", "", "user vectors: CSV (id,v1,...,vd, optional header) or Parquet (.parquet: id + features or vec list)")
	streamersPath := f.FlagSet.String("streamers", "", "streamer vectors, same formats as --users")
	dim := f.FlagSet.Int("dim", 0, "expected dimension (0: take it from the files, which must agree)")
	version := f.FlagSet.String("version", "", "version label (default <kind>-import-<UTC time>)")
	force := f.FlagSet.Bool("force", false, "activate even if worse than the active version or when it cannot be compared")
	allowUnknown := f.FlagSet.Bool("allow-unknown", false, "accept ids the database has never seen")
	if err := f.Parse(args); err != nil {
		return err
	}
	kind, err := lr.ParseModelKind(*j.model)
	if err != nil {
		fmt.Fprintf(app.Stderr, "liverecall import: %v\n", err)
		return errUsage
	}
	if *usersPath == "" || *streamersPath == "" || f.NArg() > 0 {
		fmt.Fprintln(app.Stderr, "liverecall import: --users and --streamers are required (and nothing else)")
		return errUsage
	}
	// Validate both files completely before touching the database.
	users, err := embed.ReadVectorsFile(*usersPath, *dim)
	if err != nil {
		return err
	}
	streamers, err := embed.ReadVectorsFile(*streamersPath, users.Dim)
	if err != nil {
		return err
	}
	app.Log.Info("vectors read", "users", len(users.Rows), "streamers", len(streamers.Rows), "dim", users.Dim)

	db, err := postgres.Open(ctx, *j.dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if !*allowUnknown {
		for _, vf := range []struct {
			side lr.EmbeddingSide
			f    *embed.VectorFile
		}{{lr.SideUser, users}, {lr.SideStreamer, streamers}} {
			ids := make([]int64, len(vf.f.Rows))
			for k, r := range vf.f.Rows {
				ids[k] = r.ID
			}
			unknown, err := db.UnknownIDs(ctx, vf.side, ids, 5)
			if err != nil {
				return err
			}
			if len(unknown) > 0 {
				return lr.Errorf(lr.EINVALID, "%s:%d: unknown %s id %d (%d shown of the first unknown: %v); nothing written (--allow-unknown accepts them)",
					vf.f.Name, vf.f.Line(unknown[0]), vf.side, unknown[0], len(unknown), unknown)
			}
		}
	}

	// Evaluate on the recent history when there is enough of it.
	cfg := embed.DefaultLiveConfig(kind)
	cfg.Holdout, cfg.MinInteractions, cfg.EvalMax = *j.holdout, *j.minRows, *j.evalMax
	var since time.Time
	if *j.window > 0 {
		since = time.Now().Add(-*j.window)
	}
	h, err := readHistory(ctx, db, since)
	if err != nil {
		return err
	}
	metrics := map[string]any{"source": "import", "users_file": filepath.Base(*usersPath), "streamers_file": filepath.Base(*streamersPath),
		"users": len(users.Rows), "streamers": len(streamers.Rows)}
	sp, splitErr := embed.SplitHistory(h, cfg)
	var mine embed.LiveMetrics
	if splitErr == nil {
		mine = sp.Evaluate(embed.NewVectorScorer(users.Rows, streamers.Rows))
		metrics["eval"] = liveMetricsJSON(mine)
		app.Log.Info("imported vectors on the held-out watches", "hr@10", mine.All.HR10, "ndcg@10", mine.All.NDCG10, "held_out", mine.All.N)
	} else {
		metrics["eval"] = "not evaluated: " + lr.ErrorMessage(splitErr)
		app.Log.Warn("imported vectors not evaluated", "reason", lr.ErrorMessage(splitErr))
	}
	active, err := db.ActiveModel(ctx, kind)
	hasActive := err == nil
	if err != nil && lr.ErrorCode(err) != lr.ENOTFOUND {
		return err
	}
	var activeM embed.LiveMetrics
	if hasActive && splitErr == nil {
		if activeM, err = evaluateStored(ctx, db, active, sp); err != nil {
			return err
		}
		metrics["active"] = map[string]any{"id": active.ID, "version": active.Version, "eval": liveMetricsJSON(activeM)}
	}
	label := *version
	if label == "" {
		label = fmt.Sprintf("%s-import-%s", kind, time.Now().UTC().Format("20060102T150405.000Z"))
	}
	params := map[string]any{"trainer": "import", "dim": users.Dim}
	mv, err := stageVersion(ctx, db, kind, label, users.Dim, metrics, params, users.Rows, streamers.Rows, nil)
	if err != nil {
		return err
	}
	app.Log.Info("staged", "version", mv.Version, "id", mv.ID)
	if hasActive && !*force {
		if splitErr != nil {
			return lr.Errorf(lr.ECONFLICT, "version %s (id %d) staged but not activated: it cannot be compared with the active %s (%s); use --force to activate anyway",
				mv.Version, mv.ID, active.Version, strings.TrimSuffix(lr.ErrorMessage(splitErr), "."))
		}
		if mine.All.HR10 < activeM.All.HR10-*j.margin {
			return lr.Errorf(lr.ECONFLICT, "version %s (id %d) staged but not activated: HR@10 %.4f is below the active %s's %.4f by more than the margin %.4f (use --force to activate anyway)",
				mv.Version, mv.ID, mine.All.HR10, active.Version, activeM.All.HR10, *j.margin)
		}
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "activated %s/%s (id %d): %d user and %d streamer vectors of dim %d\n",
		kind, mv.Version, mv.ID, len(users.Rows), len(streamers.Rows), users.Dim)
	return nil
}
