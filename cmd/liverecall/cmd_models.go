package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
)

func init() {
	register(&command{name: "models", summary: "list model versions, activate one, roll back to the previous one", run: runModels})
}

const modelsUsage = `usage: liverecall models [flags] ACTION
actions:
  list [--kind mf|ncf|rerank]   list the versions (of one kind), newest first
  activate KIND VERSION         make VERSION the active one of KIND (mf, ncf or rerank)
  rollback KIND                 activate again the version of KIND that was active before the current one`

// modelKinds are the kinds the models command knows: the embedding kinds
// and the reranker.
var modelKinds = []string{string(lr.ModelMF), string(lr.ModelNCF), "rerank"}

func runModels(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "models")
	dbURL := f.String(sDatabaseURL)
	kindFlag := f.FlagSet.String("kind", "", "list: only the versions of this kind (mf, ncf or rerank)")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, modelsUsage)
		f.PrintDefaults()
	}
	pos, err := parseWithPositional(f, args)
	if err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(app.Stderr, "liverecall models: "+format+"\n", a...)
		fmt.Fprintln(app.Stderr, modelsUsage)
		return errUsage
	}
	knownKind := func(k string) bool {
		for _, m := range modelKinds {
			if k == m {
				return true
			}
		}
		return false
	}
	if len(pos) == 0 {
		return usageErr("no action")
	}
	action, rest := pos[0], pos[1:]
	switch action {
	case "list":
		if len(rest) > 0 {
			return usageErr("list takes no argument")
		}
		if *kindFlag != "" && !knownKind(*kindFlag) {
			return usageErr("--kind %q: want mf, ncf or rerank", *kindFlag)
		}
	case "activate", "rollback":
		want := map[string]int{"activate": 2, "rollback": 1}[action]
		if len(rest) != want {
			return usageErr("%s takes %s", action, map[string]string{"activate": "KIND VERSION", "rollback": "KIND"}[action])
		}
		if !knownKind(rest[0]) {
			return usageErr("kind %q: want mf, ncf or rerank", rest[0])
		}
		if *kindFlag != "" {
			return usageErr("--kind is for list only")
		}
	default:
		return usageErr("unknown action %q", action)
	}
	db, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if action == "list" {
		return listModels(ctx, app.Stdout, db, *kindFlag)
	}
	kind := rest[0]
	// from is the active version before the change ("" when none).
	var from, to string
	if kind == "rerank" {
		if m, err := db.ActiveRerankModel(ctx); err == nil {
			from = m.Version
		} else if lr.ErrorCode(err) != lr.ENOTFOUND {
			return err
		}
		var m postgres.RerankModel
		if action == "activate" {
			m, err = db.RerankModelByVersion(ctx, rest[1])
		} else {
			m, err = db.PreviousRerankModel(ctx)
		}
		if err != nil {
			return err
		}
		if err := db.ActivateRerankModel(ctx, m.ID); err != nil {
			return err
		}
		to = m.Version
	} else {
		k := lr.ModelKind(kind)
		if m, err := db.ActiveModel(ctx, k); err == nil {
			from = m.Version
		} else if lr.ErrorCode(err) != lr.ENOTFOUND {
			return err
		}
		var m lr.ModelVersion
		if action == "activate" {
			m, err = db.ModelByVersion(ctx, k, rest[1])
		} else {
			m, err = db.PreviousModel(ctx, k)
		}
		if err != nil {
			return err
		}
		if m, err = db.ActivateModel(ctx, m.ID); err != nil {
			return err
		}
		to = m.Version
	}
	switch {
	case from == to:
		fmt.Fprintf(app.Stdout, "%s %s is active (it was already)\n", kind, to)
	case from == "":
		fmt.Fprintf(app.Stdout, "%s %s is active\n", kind, to)
	case action == "rollback":
		fmt.Fprintf(app.Stdout, "%s rolled back: %s is active, %s retired\n", kind, to, from)
	default:
		fmt.Fprintf(app.Stdout, "%s %s is active, %s retired\n", kind, to, from)
	}
	return warnRetiredArms(ctx, app.Stderr, db, kind)
}

// listModels writes the versions of kind ("" every kind) as a table,
// newest first within a kind.
func listModels(ctx context.Context, w io.Writer, db *postgres.DB, kind string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVERSION\tSTATUS\tDIM\tCREATED\tACTIVATED")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, k := range modelKinds {
		if kind != "" && k != kind {
			continue
		}
		if k == "rerank" {
			ms, err := db.ListRerankModels(ctx)
			if err != nil {
				return err
			}
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\t%s\t%s\n", k, m.Version, m.Status, m.CreatedAt.UTC().Format(time.RFC3339), at(m.ActivatedAt))
			}
			continue
		}
		ms, err := db.ListModels(ctx, lr.ModelKind(k))
		if err != nil {
			return err
		}
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k, m.Version, m.Status, strconv.Itoa(m.Dim), m.CreatedAt.UTC().Format(time.RFC3339), at(m.ActivatedAt))
		}
	}
	return tw.Flush()
}
