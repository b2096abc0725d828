package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
)

const experimentColumns = `id, name, salt, layer, mode, status, start_at, end_at, arms, created_at`

func scanExperiment(row pgx.Row) (lr.Experiment, error) {
	var e lr.Experiment
	var mode, status string
	var end *time.Time
	var arms []byte
	if err := row.Scan(&e.ID, &e.Name, &e.Salt, &e.Layer, &mode, &status, &e.Start, &end, &arms, &e.CreatedAt); err != nil {
		return e, err
	}
	e.Mode, e.Status = lr.ExperimentMode(mode), lr.ExperimentStatus(status)
	e.Start, e.CreatedAt = e.Start.UTC(), e.CreatedAt.UTC()
	if end != nil {
		e.End = end.UTC()
	}
	if err := json.Unmarshal(arms, &e.Arms); err != nil {
		return e, fmt.Errorf("experiment %s: stored arms: %w", e.Name, err)
	}
	return e, nil
}

// lockExperiments serialises the changes of experiments (creation and
// every transition) for the rest of tx, so that two of them cannot both
// pass the conflict check against a state the other is changing.
func lockExperiments(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('liverecall.experiments'))`)
	return err
}

// CreateExperiment stores e as a draft and returns it as stored (its id,
// its layer, "default" when e names none, its start, the creation time
// when e has none). It refuses, changing nothing:
//   - a definition experiment.Check refuses against channels (the recall
//     channel names the service knows): EINVALID;
//   - an arm naming a model version that does not exist: ENOTFOUND, or
//     that is retired: ECONFLICT (staged and active versions are fine);
//   - an experiment that conflicts (experiment.Conflict: same layer, or a
//     parameter in common, with overlapping windows) with an experiment
//     that is not stopped, draft ones included: ECONFLICT;
//   - a name already taken: ECONFLICT.
//
// The checks and the insert are one transaction, serialised with every
// other change of experiments; the model versions an arm names are locked
// against activation until it commits. The creation is announced on
// ExperimentsChannel when committed. e.Status and e.ID are ignored.
func (db *DB) CreateExperiment(ctx context.Context, e lr.Experiment, channels []string) (lr.Experiment, error) {
	const op = "postgres.CreateExperiment"
	e.ID, e.Status, e.CreatedAt = 0, lr.ExperimentDraft, time.Time{}
	if e.Layer == "" {
		e.Layer = lr.DefaultLayer
	}
	if e.Start.IsZero() {
		e.Start = time.Now().UTC()
	}
	if err := experiment.Check(&e, channels); err != nil {
		return lr.Experiment{}, err
	}
	arms, err := json.Marshal(e.Arms)
	if err != nil {
		return lr.Experiment{}, lr.Errorf(lr.EINVALID, "experiment %s: arms: %v", e.Name, err)
	}
	var out lr.Experiment
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := lockExperiments(ctx, tx); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM experiments WHERE name = $1)`, e.Name).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return lr.Errorf(lr.ECONFLICT, "experiment %s already exists", e.Name)
		}
		if err := checkVersions(ctx, tx, &e); err != nil {
			return err
		}
		if err := checkConflicts(ctx, tx, &e); err != nil {
			return err
		}
		var end *time.Time
		if !e.End.IsZero() {
			end = &e.End
		}
		out, err = scanExperiment(tx.QueryRow(ctx, `INSERT INTO experiments (name, salt, layer, mode, start_at, end_at, arms)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+experimentColumns,
			e.Name, e.Salt, e.Layer, string(e.Mode), e.Start, end, arms))
		if err != nil {
			return err
		}
		return notifyExperiment(ctx, tx, out)
	})
	return out, db.codeOr(op, err)
}

// StartExperiment moves the draft or paused experiment name to running
// and announces it. It re-checks what may have changed since the
// experiment was created: the versions its arms name still exist and are
// not retired, it conflicts with no other experiment that is not stopped,
// and its window has not ended. Refusals change nothing: ENOTFOUND (no
// such experiment or version), ECONFLICT (running or stopped already, a
// retired version, a conflict, a window that ended).
func (db *DB) StartExperiment(ctx context.Context, name string) (lr.Experiment, error) {
	return db.transition(ctx, "postgres.StartExperiment", name, lr.ExperimentRunning, func(ctx context.Context, tx pgx.Tx, e *lr.Experiment) error {
		if e.Status != lr.ExperimentDraft && e.Status != lr.ExperimentPaused {
			return lr.Errorf(lr.ECONFLICT, "experiment %s is %s: only a draft or paused experiment can be started", e.Name, e.Status)
		}
		if !e.End.IsZero() && !e.End.After(time.Now()) {
			return lr.Errorf(lr.ECONFLICT, "experiment %s ended at %s: its window is over, create a new experiment", e.Name, e.End.Format(time.RFC3339))
		}
		if err := checkVersions(ctx, tx, e); err != nil {
			return err
		}
		return checkConflicts(ctx, tx, e)
	})
}

// PauseExperiment moves the running experiment name to paused and
// announces it: its users get the default configuration, their
// assignment is kept for when it is started again. ENOTFOUND when there
// is no such experiment, ECONFLICT when it is not running.
func (db *DB) PauseExperiment(ctx context.Context, name string) (lr.Experiment, error) {
	return db.transition(ctx, "postgres.PauseExperiment", name, lr.ExperimentPaused, func(_ context.Context, _ pgx.Tx, e *lr.Experiment) error {
		if e.Status != lr.ExperimentRunning {
			return lr.Errorf(lr.ECONFLICT, "experiment %s is %s: only a running experiment can be paused", e.Name, e.Status)
		}
		return nil
	})
}

// StopExperiment stops the experiment name for good (a draft, running or
// paused one) and announces it; its impressions stay for reports.
// ENOTFOUND when there is no such experiment, ECONFLICT when it is
// stopped already.
func (db *DB) StopExperiment(ctx context.Context, name string) (lr.Experiment, error) {
	return db.transition(ctx, "postgres.StopExperiment", name, lr.ExperimentStopped, func(_ context.Context, _ pgx.Tx, e *lr.Experiment) error {
		if e.Status == lr.ExperimentStopped {
			return lr.Errorf(lr.ECONFLICT, "experiment %s is stopped already", e.Name)
		}
		return nil
	})
}

// transition moves experiment name to status if check, called with the
// experiment as stored in the same transaction, allows it; then it
// notifies ExperimentsChannel, in that transaction.
func (db *DB) transition(ctx context.Context, op, name string, status lr.ExperimentStatus,
	check func(context.Context, pgx.Tx, *lr.Experiment) error) (lr.Experiment, error) {
	var out lr.Experiment
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := lockExperiments(ctx, tx); err != nil {
			return err
		}
		e, err := scanExperiment(tx.QueryRow(ctx, `SELECT `+experimentColumns+` FROM experiments WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return lr.Errorf(lr.ENOTFOUND, "experiment %q not found", name)
		}
		if err != nil {
			return err
		}
		if err := check(ctx, tx, &e); err != nil {
			return err
		}
		out, err = scanExperiment(tx.QueryRow(ctx, `UPDATE experiments SET status = $2, updated_at = now(),
			started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
			stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END
			WHERE id = $1 RETURNING `+experimentColumns, e.ID, string(status)))
		if err != nil {
			return err
		}
		return notifyExperiment(ctx, tx, out)
	})
	return out, db.codeOr(op, err)
}

// codeOr returns err as is when it carries a code (a refusal), else
// wrapped as db.wrap does.
func (db *DB) codeOr(op string, err error) error {
	var le *lr.Error
	if err == nil || errors.As(err, &le) {
		return err
	}
	return db.wrap(op, err)
}

func notifyExperiment(ctx context.Context, tx pgx.Tx, e lr.Experiment) error {
	payload, _ := json.Marshal(map[string]any{"id": e.ID, "name": e.Name, "status": e.Status})
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ExperimentsChannel, string(payload))
	return err
}

// checkVersions checks that every model version e's arms name exists and
// is not retired, and locks those versions (FOR SHARE) until tx ends so an
// activation cannot retire one meanwhile.
func checkVersions(ctx context.Context, tx pgx.Tx, e *lr.Experiment) error {
	for _, a := range e.Arms {
		for _, v := range []struct{ field, kind, version string }{
			{"mf_version", string(lr.ModelMF), a.Config.MFVersion},
			{"ncf_version", string(lr.ModelNCF), a.Config.NCFVersion},
			{"rerank_version", "rerank", a.Config.RerankVersion},
		} {
			if v.version == "" {
				continue
			}
			var status string
			var err error
			if v.kind == "rerank" {
				err = tx.QueryRow(ctx, `SELECT status FROM rerank_models WHERE version = $1 FOR SHARE`, v.version).Scan(&status)
			} else {
				err = tx.QueryRow(ctx, `SELECT status FROM embedding_models WHERE kind = $1 AND version = $2 FOR SHARE`, v.kind, v.version).Scan(&status)
			}
			if errors.Is(err, pgx.ErrNoRows) {
				return lr.Errorf(lr.ENOTFOUND, "experiment %s: arm %s: %s %q: no %s model version %q", e.Name, a.Name, v.field, v.version, v.kind, v.version)
			}
			if err != nil {
				return err
			}
			if lr.ModelStatus(status) == lr.StatusRetired {
				return lr.Errorf(lr.ECONFLICT, "experiment %s: arm %s: %s %q: the %s model version %q is retired (activate it again, or name a staged or active version)", e.Name, a.Name, v.field, v.version, v.kind, v.version)
			}
		}
	}
	return nil
}

// checkConflicts checks e against every other experiment that is not
// stopped (experiment.Conflict).
func checkConflicts(ctx context.Context, tx pgx.Tx, e *lr.Experiment) error {
	rows, err := tx.Query(ctx, `SELECT `+experimentColumns+` FROM experiments WHERE status <> 'stopped' AND name <> $1 ORDER BY id`, e.Name)
	if err != nil {
		return err
	}
	others, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lr.Experiment, error) { return scanExperiment(r) })
	if err != nil {
		return err
	}
	for i := range others {
		if err := experiment.Conflict(e, &others[i]); err != nil {
			return err
		}
	}
	return nil
}

// ListExperiments returns every experiment, oldest first.
func (db *DB) ListExperiments(ctx context.Context) ([]lr.Experiment, error) {
	return db.queryExperiments(ctx, "postgres.ListExperiments", `SELECT `+experimentColumns+` FROM experiments ORDER BY id`)
}

// ServingExperiments returns the experiments replicas serve: running or
// paused (a paused one keeps its versions loaded for when it is started
// again) and whose window has not ended, oldest first. An experiment whose
// start is still ahead is included (replicas load its versions ahead of
// it); whether it assigns traffic at a given instant is for the caller to
// decide from Status, Start and End.
func (db *DB) ServingExperiments(ctx context.Context) ([]lr.Experiment, error) {
	return db.queryExperiments(ctx, "postgres.ServingExperiments", `SELECT `+experimentColumns+` FROM experiments
		WHERE status IN ('running', 'paused') AND (end_at IS NULL OR end_at > now()) ORDER BY id`)
}

func (db *DB) queryExperiments(ctx context.Context, op, sql string, args ...any) ([]lr.Experiment, error) {
	rows, err := db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lr.Experiment, error) { return scanExperiment(r) })
	return out, db.wrap(op, err)
}

// ExperimentByName returns the experiment name, or ENOTFOUND.
func (db *DB) ExperimentByName(ctx context.Context, name string) (lr.Experiment, error) {
	e, err := scanExperiment(db.Pool.QueryRow(ctx, `SELECT `+experimentColumns+` FROM experiments WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, lr.Errorf(lr.ENOTFOUND, "experiment %q not found", name)
	}
	return e, db.wrap("postgres.ExperimentByName", err)
}

// ArmVersion is an arm of an experiment that names a model version.
type ArmVersion struct {
	Experiment string
	Status     lr.ExperimentStatus
	Arm        string
	Field      string // "mf_version", "ncf_version" or "rerank_version"
	Version    string
}

// ArmsNamingRetired returns the arms of experiments that are not stopped
// which name a model version that is retired now (kind "mf", "ncf" or
// "rerank"; "" for every kind). Such an arm is not refused after the fact:
// replicas serve its users with the default configuration and say so;
// activating the version again, or stopping the experiment, ends it. The
// CLI warns with it after an activation.
func (db *DB) ArmsNamingRetired(ctx context.Context, kind string) ([]ArmVersion, error) {
	const op = "postgres.ArmsNamingRetired"
	exps, err := db.queryExperiments(ctx, op, `SELECT `+experimentColumns+` FROM experiments WHERE status <> 'stopped' ORDER BY id`)
	if err != nil || len(exps) == 0 {
		return nil, err
	}
	retired := map[[2]string]bool{}
	rows, err := db.Pool.Query(ctx, `SELECT kind, version FROM embedding_models WHERE status = 'retired'
		UNION ALL SELECT 'rerank', version FROM rerank_models WHERE status = 'retired'`)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	pairs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	if err != nil {
		return nil, db.wrap(op, err)
	}
	for _, p := range pairs {
		retired[p] = true
	}
	var out []ArmVersion
	for _, e := range exps {
		for _, a := range e.Arms {
			for _, v := range [][3]string{
				{"mf", "mf_version", a.Config.MFVersion},
				{"ncf", "ncf_version", a.Config.NCFVersion},
				{"rerank", "rerank_version", a.Config.RerankVersion},
			} {
				if v[2] != "" && (kind == "" || kind == v[0]) && retired[[2]string{v[0], v[2]}] {
					out = append(out, ArmVersion{Experiment: e.Name, Status: e.Status, Arm: a.Name, Field: v[1], Version: v[2]})
				}
			}
		}
	}
	return out, nil
}
