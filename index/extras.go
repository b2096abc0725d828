package index

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
)

// VersionStore is the part of the store Serve resolves version labels
// with; *postgres.DB has it. Serve refuses to run when the Store does not
// implement it.
type VersionStore interface {
	// ListModels returns the versions of kind (any status).
	ListModels(ctx context.Context, kind lr.ModelKind) ([]lr.ModelVersion, error)
}

// Roles of a version in VersionStatus and in the
// liverecall_index_serving_versions metric.
const (
	RoleActive     = "active"     // the kind's active version (Current)
	RoleExperiment = "experiment" // loaded beside it because Serve wants it
	RoleLoading    = "loading"    // wanted, not loaded yet
	RoleFailed     = "failed"     // wanted, could not be loaded (Error says why)
)

// extraSet is one kind's set of extra serving versions: the labels Serve
// wants, the indexes loaded for them and the failures. It is immutable
// once published in slot.extras; changes copy it under Manager.liveMu.
type extraSet struct {
	want    []string          // sorted
	byLabel map[string]*Index // loaded
	byID    map[int64]*Index  // the same indexes by model id
	failed  map[string]extraFailure
}

// extraFailure is why a wanted version is not loaded.
type extraFailure struct {
	modelID int64 // 0: the version was not found
	code    string
	err     string
	at      time.Time
}

func (e *extraSet) wants(label string) bool {
	if e == nil {
		return false
	}
	_, ok := slices.BinarySearch(e.want, label)
	return ok
}

// clone returns a copy of e (an empty set for nil) to change.
func (e *extraSet) clone() *extraSet {
	c := &extraSet{byLabel: map[string]*Index{}, byID: map[int64]*Index{}, failed: map[string]extraFailure{}}
	if e != nil {
		c.want = slices.Clone(e.want)
		maps.Copy(c.byLabel, e.byLabel)
		maps.Copy(c.byID, e.byID)
		maps.Copy(c.failed, e.failed)
	}
	return c
}

// changeExtras applies fn to a copy of s's extra set and publishes it, then
// brings the version metrics of s up to date. The caller holds liveMu
// (which orders every change of the set with SetLive).
func (m *Manager) changeExtras(s *slot, fn func(e *extraSet)) {
	e := s.extras.Load().clone()
	fn(e)
	s.extras.Store(e)
	m.versionMetrics(s)
}

// ServeResult says what Serve did for one wanted version.
type ServeResult struct {
	Kind    lr.ModelKind `json:"kind"`
	Version string       `json:"version"`
	ModelID int64        `json:"model_id,omitempty"`
	// Outcome: "active" (the kind's active version serves it), "kept"
	// (loaded before), "loaded" (built now), "failed" (Error says why),
	// "cancelled".
	Outcome string  `json:"outcome"`
	Seconds float64 `json:"seconds,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Serve makes the extra serving versions of each kind in want exactly
// the labels given (a kind absent from want keeps its set; an empty list
// drops all): each newly wanted version is loaded beside the active one
// by the same path as a rebuild of the active version (validation, build
// and self-check at the serving duty cycle, one build of a kind at a
// time), and takes the live set as the active index does; a version no
// longer wanted is dropped (its memory is released once no request holds
// it). A version that is the kind's active one needs no extra index; one
// that is the previous index (kept for Rollback) reuses it.
//
// A version that cannot be loaded (unknown label, bad rows, self-check
// below the floor, store errors) is recorded as failed in Status and the
// metrics, and nothing else changes; a refused one (bad data, EINVALID) is
// not tried again while it stays wanted, a failed one (store errors) is
// tried again at the next Serve. The active indexes are never touched.
//
// Serve blocks until every build is done or ctx ends; it returns what it
// did per wanted version and the errors joined (failures of versions
// included). When the versions cannot be listed, the sets are kept as
// they are. Calls are serialised per kind.
func (m *Manager) Serve(ctx context.Context, want map[lr.ModelKind][]string) ([]ServeResult, error) {
	vs, ok := m.cfg.Store.(VersionStore)
	if !ok {
		return nil, lr.Errorf(lr.EINVALID, "index.Serve: the store cannot list model versions")
	}
	var out []ServeResult
	var errs []error
	for _, kind := range slices.Sorted(maps.Keys(want)) {
		s, ok := m.slots[kind]
		if !ok {
			errs = append(errs, lr.Errorf(lr.EINVALID, "model kind %s is not served", kind))
			continue
		}
		res, err := m.serveKind(ctx, vs, s, want[kind])
		out = append(out, res...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func (m *Manager) serveKind(ctx context.Context, vs VersionStore, s *slot, labels []string) ([]ServeResult, error) {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	labels = slices.Compact(slices.Sorted(slices.Values(labels)))
	versions, err := vs.ListModels(ctx, s.kind)
	if err != nil {
		if ctx.Err() != nil {
			return nil, lr.E("index.Serve", lr.EUNAVAILABLE, context.Cause(ctx))
		}
		m.log.Error("extra serving versions not updated: versions not listed; the loaded ones are kept", "kind", s.kind, "err", err)
		return nil, err
	}
	byLabel := map[string]lr.ModelVersion{}
	for _, mv := range versions {
		byLabel[mv.Version] = mv
	}
	m.liveMu.Lock()
	m.changeExtras(s, func(e *extraSet) {
		e.want = labels
		for l, x := range e.byLabel {
			if !e.wants(l) || byLabel[l].ID != x.Model.ID {
				delete(e.byLabel, l)
				delete(e.byID, x.Model.ID)
				m.log.Info("extra serving version dropped", "kind", s.kind, "version", l)
			}
		}
		for l := range e.failed {
			if !e.wants(l) {
				delete(e.failed, l)
			}
		}
	})
	m.liveMu.Unlock()

	var out []ServeResult
	var errs []error
	for _, label := range labels {
		r, err := m.serveVersion(ctx, s, label, byLabel)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return out, errors.Join(errs...)
}

// serveVersion loads label (of s's kind) as an extra serving version
// unless it serves already; the caller holds s.serveMu.
func (m *Manager) serveVersion(ctx context.Context, s *slot, label string, versions map[string]lr.ModelVersion) (ServeResult, error) {
	res := ServeResult{Kind: s.kind, Version: label}
	mv, ok := versions[label]
	if !ok {
		err := lr.Errorf(lr.ENOTFOUND, "model version %s/%s not found", s.kind, label)
		m.failExtra(s, label, 0, err)
		res.Outcome, res.Error = "failed", err.Error()
		return res, err
	}
	res.ModelID = mv.ID
	if cur := s.cur.Load(); cur != nil && cur.Model.ID == mv.ID {
		res.Outcome = "active"
		return res, nil
	}
	if mv.Status == lr.StatusRetired {
		// An arm naming a version retired since the experiment was
		// created gets the default configuration (postgres.ArmsNamingRetired).
		err := lr.Errorf(lr.EINVALID, "model version %s/%s is retired: its arms get the default configuration until it is activated again or the experiment stops", s.kind, label)
		m.failExtra(s, label, mv.ID, err)
		res.Outcome, res.Error = "failed", err.Error()
		return res, err
	}
	e := s.extras.Load()
	if _, ok := e.byID[mv.ID]; ok {
		res.Outcome = "kept"
		return res, nil
	}
	if f, ok := e.failed[label]; ok && f.modelID == mv.ID && f.code == lr.EINVALID {
		res.Outcome, res.Error = "failed", f.err
		return res, nil // refused before: the data has not changed
	}
	t0 := time.Now()
	s.reloadMu.Lock()
	var x *Index
	if p := s.prev.Load(); p != nil && p.Model.ID == mv.ID {
		x = p
	} else if cur := s.cur.Load(); cur != nil && cur.Model.ID == mv.ID {
		// Activated while we waited for the lock.
		s.reloadMu.Unlock()
		res.Outcome = "active"
		return res, nil
	}
	var err error
	if x == nil {
		m.log.Info("loading extra serving version", "kind", s.kind, "version", label, "model_id", mv.ID)
		x, err = m.build(ctx, mv, true)
		if err == nil {
			if n, cerr := m.cfg.Store.CountEmbeddings(ctx, mv.ID, lr.SideUser); cerr == nil {
				x.UserRows = n
			}
		}
	}
	if err == nil {
		m.liveMu.Lock()
		m.fillLive(x)
		m.changeExtras(s, func(e *extraSet) {
			if e.wants(label) {
				e.byLabel[label], e.byID[mv.ID] = x, x
				delete(e.failed, label)
			}
		})
		m.liveMu.Unlock()
	}
	s.reloadMu.Unlock()
	res.Seconds = time.Since(t0).Seconds()
	if err != nil && ctx.Err() != nil {
		res.Outcome, res.Error = "cancelled", context.Cause(ctx).Error()
		return res, lr.E("index.Serve", lr.EUNAVAILABLE, context.Cause(ctx))
	}
	if err != nil {
		m.failExtra(s, label, mv.ID, err)
		res.Outcome, res.Error = "failed", err.Error()
		return res, err
	}
	res.Outcome = "loaded"
	m.log.Info("extra serving version loaded", "kind", s.kind, "version", label, "vectors", x.Len(), "seconds", res.Seconds, "self_check_recall", x.Recall)
	return res, nil
}

// failExtra records that the wanted version label could not be loaded.
// It is counted and logged when it is new (not the same error as the last
// attempt's), so a periodic Serve does not repeat a standing failure.
func (m *Manager) failExtra(s *slot, label string, modelID int64, err error) {
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	if e := s.extras.Load(); e != nil && e.byLabel[label] == nil {
		if f, ok := e.failed[label]; ok && f.modelID == modelID && f.err == err.Error() {
			return
		}
	}
	m.metrics.extraFailures.WithLabelValues(string(s.kind)).Inc()
	m.log.Error("extra serving version not loaded; its experiment arms get the default configuration", "kind", s.kind, "version", label, "err", err)
	m.changeExtras(s, func(e *extraSet) {
		if x := e.byLabel[label]; x != nil {
			delete(e.byLabel, label)
			delete(e.byID, x.Model.ID)
		}
		if e.wants(label) {
			e.failed[label] = extraFailure{modelID: modelID, code: lr.ErrorCode(err), err: err.Error(), at: time.Now()}
		}
	})
}

// afterSwap is called by swap and Rollback (holding liveMu) with the index
// that stopped being kind's active one. It does not serve as an extra
// version even when Serve wants it: it was replaced because another
// version was activated, which retired it, and arms naming a retired
// version get the default configuration (the next Serve reports it so);
// it is taken out of the extras if it was there. An extra index of the
// new active version stays in the set, shared with the active slot.
func (m *Manager) afterSwap(s *slot, old *Index) {
	if e := s.extras.Load(); old != nil && e != nil && e.byID[old.Model.ID] != nil {
		m.changeExtras(s, func(e *extraSet) {
			delete(e.byLabel, old.Model.Version)
			delete(e.byID, old.Model.ID)
		})
		return
	}
	m.versionMetrics(s)
}

// Kinds returns the model kinds m serves (Config.Kinds), in order.
func (m *Manager) Kinds() []lr.ModelKind { return slices.Clone(m.cfg.Kinds) }

// ModelByVersion returns kind's version labelled version when this
// replica serves it: the active version, or one loaded by Serve; false
// otherwise (not wanted, not loaded yet, failed, or unknown)
// (recommend.ArmIndex). Searches pinned to its ID are answered from that
// version's index.
func (m *Manager) ModelByVersion(kind lr.ModelKind, version string) (lr.ModelVersion, bool) {
	s, ok := m.slots[kind]
	if !ok || version == "" {
		return lr.ModelVersion{}, false
	}
	if x := s.cur.Load(); x != nil && x.Model.Version == version {
		return x.Model, true
	}
	if e := s.extras.Load(); e != nil {
		if x, ok := e.byLabel[version]; ok {
			return x.Model, true
		}
	}
	return lr.ModelVersion{}, false
}

// VersionStatus describes one version of a kind that serves or was wanted:
// Role says which (RoleActive, RoleExperiment, RoleLoading, RoleFailed).
type VersionStatus struct {
	Version     string     `json:"version"`
	ModelID     int64      `json:"model_id,omitempty"`
	Role        string     `json:"role"`
	Vectors     int        `json:"vectors,omitempty"`
	LiveVectors int        `json:"live_vectors,omitempty"`
	SelfCheck   float64    `json:"self_check_recall,omitempty"`
	Error       string     `json:"error,omitempty"`
	FailedAt    *time.Time `json:"failed_at,omitempty"`
	// The version's plan (see KindStatus): the ef of unfiltered searches
	// (0: exact scans, or not loaded), and per measured accepted share the
	// ef chosen and the recall measured there.
	SearchEf   int                `json:"search_ef,omitempty"`
	PlanEf     map[string]int     `json:"plan_ef,omitempty"`
	PlanRecall map[string]float64 `json:"plan_recall,omitempty"`
}

// versions lists s's versions for Status and the metrics: the active one
// first, then the extra ones by label.
func (m *Manager) versions(s *slot) []VersionStatus {
	var out []VersionStatus
	cur := s.cur.Load()
	if cur != nil {
		ps := cur.Summary()
		out = append(out, VersionStatus{Version: cur.Model.Version, ModelID: cur.Model.ID, Role: RoleActive, Vectors: cur.Len(),
			LiveVectors: cur.LiveLen(), SelfCheck: cur.Recall, SearchEf: ps.SearchEf, PlanEf: ps.PlanEf, PlanRecall: ps.PlanRecall})
	}
	e := s.extras.Load()
	if e == nil {
		return out
	}
	for _, l := range e.want {
		if cur != nil && cur.Model.Version == l {
			continue
		}
		st := VersionStatus{Version: l, Role: RoleLoading}
		if x, ok := e.byLabel[l]; ok {
			st.ModelID, st.Role, st.Vectors, st.LiveVectors, st.SelfCheck = x.Model.ID, RoleExperiment, x.Len(), x.LiveLen(), x.Recall
			ps := x.Summary()
			st.SearchEf, st.PlanEf, st.PlanRecall = ps.SearchEf, ps.PlanEf, ps.PlanRecall
		} else if f, ok := e.failed[l]; ok {
			at := f.at
			st.ModelID, st.Role, st.Error, st.FailedAt = f.modelID, RoleFailed, f.err, &at
		}
		out = append(out, st)
	}
	return out
}

// versionMetrics sets liverecall_index_serving_versions for s's kind; the
// caller holds liveMu (so two updates do not interleave).
func (m *Manager) versionMetrics(s *slot) {
	g := m.metrics.servingVersions
	g.DeletePartialMatch(map[string]string{"kind": string(s.kind)})
	for _, v := range m.versions(s) {
		g.WithLabelValues(string(s.kind), v.Version, v.Role).Set(1)
	}
}
