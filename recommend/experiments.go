package recommend

import (
	"errors"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// ArmIndex resolves the embedding versions an experiment's arm names to
// what this replica serves (index.Manager): the active version of a kind
// and the versions loaded for running experiments.
type ArmIndex interface {
	// ModelByVersion returns kind's version labelled version when this
	// replica serves it (active or loaded for an experiment), else false
	// (not loaded yet, failed to load, or unknown).
	ModelByVersion(kind lr.ModelKind, version string) (lr.ModelVersion, bool)
}

// ArmScorers resolves the reranker and NeuMF versions an arm names
// (Models).
type ArmScorers interface {
	// WeightsVersion returns the reranker model of version (active or
	// loaded for an experiment), else false.
	WeightsVersion(version string) (rerank.Model, bool)
	// NCFFor returns the NeuMF scorer of the NCF version with
	// embedding_models id modelID when one is loaded, else nil (rerank
	// then takes the GMF dot product).
	NCFFor(modelID int64) NCF
}

// Fallback reasons, the reason label of
// liverecall_experiment_fallbacks_total: which version an arm names that
// this replica does not serve, or (interleave_overlap) a second
// interleaving experiment for a user already in one.
const (
	FallbackMF                = "mf_version"
	FallbackNCF               = "ncf_version"
	FallbackRerank            = "rerank_version"
	FallbackInterleaveOverlap = "interleave_overlap"
)

// ExperimentSet is the experiments a Service serves (Config.Experiments).
// The wiring calls Set whenever the stored experiments change; requests
// read the set without locks (an atomic swap of an immutable snapshot).
// Safe for concurrent use.
//
// Per request, each running experiment whose window holds the request's
// time (Config.Now) places the user by experiment.ArmOf; experiments in
// different layers set disjoint parameters, so the arms a user falls in
// combine into one configuration. Draft and paused experiments assign no
// one (an operator's arm override may still name them); stopped ones are
// not held.
type ExperimentSet struct {
	cur atomic.Pointer[expSnapshot]
}

// NewExperimentSet returns an empty set: every request gets the default
// configuration until Set.
func NewExperimentSet() *ExperimentSet { return &ExperimentSet{} }

type expSnapshot struct {
	exps   []*servedExp // by layer, then name
	byName map[string]*servedExp
}

// servedExp is one experiment as served: its definition (not modified
// after Set) and its arms compiled.
type servedExp struct {
	lr.Experiment
	arms []*servedArm
}

// servedArm is one arm: its configuration's channel part compiled to a
// recall.Override, and the Override last handed to recall with the
// versions it resolved to (reused while they resolve the same).
type servedArm struct {
	exp       *servedExp
	name      string
	cfg       *lr.ArmConfig
	static    recall.Override // the channel part; maps shared, read-only
	hasStatic bool
	last      atomic.Pointer[recall.Override]
}

// Set replaces the experiments served with exps (any status; stopped ones
// are dropped). An experiment that fails experiment.Check, or that
// conflicts (experiment.Conflict) with a running one before it in exps,
// is left out and named in the returned error; the others serve. Set
// copies what it keeps: the caller may modify exps afterwards.
func (s *ExperimentSet) Set(exps []lr.Experiment) error {
	snap := &expSnapshot{byName: map[string]*servedExp{}}
	var errs []error
	var running []*lr.Experiment
	for i := range exps {
		e := &exps[i]
		if e.Status == lr.ExperimentStopped {
			continue
		}
		if err := experiment.Check(e, recall.Channels); err != nil {
			errs = append(errs, err)
			continue
		}
		if snap.byName[e.Name] != nil {
			errs = append(errs, lr.Errorf(lr.EINVALID, "experiment %s given twice", e.Name))
			continue
		}
		if e.Status == lr.ExperimentRunning {
			var conflict error
			for _, r := range running {
				if conflict = experiment.Conflict(e, r); conflict != nil {
					break
				}
			}
			if conflict != nil {
				errs = append(errs, conflict)
				continue
			}
			running = append(running, e)
		}
		se := &servedExp{Experiment: *e}
		se.Arms = slices.Clone(e.Arms)
		if se.Layer == "" {
			se.Layer = lr.DefaultLayer
		}
		for j := range se.Arms {
			a := &servedArm{exp: se, name: se.Arms[j].Name, cfg: &se.Arms[j].Config}
			a.static, a.hasStatic = channelOverride(a.cfg)
			se.arms = append(se.arms, a)
		}
		snap.exps = append(snap.exps, se)
		snap.byName[se.Name] = se
	}
	slices.SortFunc(snap.exps, func(a, b *servedExp) int {
		if c := strings.Compare(a.Layer, b.Layer); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	s.cur.Store(snap)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// Len returns how many experiments the set holds (stopped ones are not
// held).
func (s *ExperimentSet) Len() int {
	if snap := s.cur.Load(); snap != nil {
		return len(snap.exps)
	}
	return 0
}

// channelOverride is the channel part of c as a recall.Override, and
// whether c sets any of it.
func channelOverride(c *lr.ArmConfig) (recall.Override, bool) {
	var o recall.Override
	set := false
	if len(c.Disabled) > 0 {
		o.Disabled, set = map[string]bool{}, true
		for _, ch := range c.Disabled {
			o.Disabled[ch] = true
		}
	}
	if len(c.Enabled) > 0 {
		o.Enabled, set = map[string]bool{}, true
		for _, ch := range c.Enabled {
			o.Enabled[ch] = true
		}
	}
	if len(c.PerChannel) > 0 {
		o.PerChannel, set = maps.Clone(c.PerChannel), true
	}
	if len(c.Quota) > 0 {
		o.Quota, set = maps.Clone(c.Quota), true
	}
	if len(c.ChannelBudgetMS) > 0 {
		o.ChannelBudget, set = map[string]time.Duration{}, true
		for ch, ms := range c.ChannelBudgetMS {
			o.ChannelBudget[ch] = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return o, set
}

// override returns the recall.Override of the arm alone with versions mf
// and ncf pinned, nil when it changes nothing; the same pointer while the
// versions resolve the same (no allocation per request).
func (a *servedArm) override(mf, ncf recall.Pin) *recall.Override {
	if !a.hasStatic && mf.ID == 0 && ncf.ID == 0 {
		return nil
	}
	if o := a.last.Load(); o != nil && o.MF == mf && o.NCF == ncf {
		return o
	}
	o := a.static
	o.MF, o.NCF = mf, ncf
	a.last.Store(&o)
	return &o
}

// plan is how one ranking of a request is configured: the recall
// override and the reranker's models (nil weights: Scorers.Weights();
// ncfSet: ncf replaces Scorers.NCF(), nil meaning no NeuMF).
type plan struct {
	over     *recall.Override
	weights  rerank.Model
	ncf      NCF
	ncfSet   bool
	versions map[string]string // for the debug page: what the arms pinned
}

// resolvedArm is an arm whose versions all serve here.
type resolvedArm struct {
	arm      *servedArm
	mf, ncf  recall.Pin
	weights  rerank.Model
	ncfModel NCF
}

// resolve finds the versions a's configuration names among those this
// replica serves; on a miss it returns the fallback reason and a sentence
// for the debug page.
func (s *Service) resolve(a *servedArm) (r resolvedArm, reason, why string) {
	r.arm = a
	c := a.cfg
	for _, kv := range []struct {
		kind    lr.ModelKind
		version string
		pin     *recall.Pin
		reason  string
	}{{lr.ModelMF, c.MFVersion, &r.mf, FallbackMF}, {lr.ModelNCF, c.NCFVersion, &r.ncf, FallbackNCF}} {
		if kv.version == "" {
			continue
		}
		var mv lr.ModelVersion
		ok := false
		if s.arms != nil {
			mv, ok = s.arms.ModelByVersion(kv.kind, kv.version)
		}
		if !ok || mv.ID == 0 {
			return r, kv.reason, kv.reason + " " + kv.version + " does not serve on this replica"
		}
		*kv.pin = recall.Pin{ID: mv.ID, Version: mv.Version}
	}
	if r.ncf.ID != 0 && s.armScorers != nil {
		r.ncfModel = s.armScorers.NCFFor(r.ncf.ID)
	}
	if c.RerankVersion != "" {
		ok := false
		if s.armScorers != nil {
			r.weights, ok = s.armScorers.WeightsVersion(c.RerankVersion)
		}
		if !ok || r.weights == nil {
			return r, FallbackRerank, FallbackRerank + " " + c.RerankVersion + " does not serve on this replica"
		}
	}
	return r, "", ""
}

// planOf combines resolved arms of different layers (which set disjoint
// parameters) into one plan. One arm reuses its cached override; several
// build a merged one.
func planOf(arms []resolvedArm, debug bool) plan {
	var p plan
	var mf, ncf recall.Pin
	for _, r := range arms {
		if r.mf.ID != 0 {
			mf = r.mf
		}
		if r.ncf.ID != 0 {
			ncf, p.ncf, p.ncfSet = r.ncf, r.ncfModel, true
		}
		if r.weights != nil {
			p.weights = r.weights
		}
	}
	switch len(arms) {
	case 0:
	case 1:
		p.over = arms[0].arm.override(mf, ncf)
	default:
		o := &recall.Override{MF: mf, NCF: ncf}
		set := mf.ID != 0 || ncf.ID != 0
		for _, r := range arms {
			if !r.arm.hasStatic {
				continue
			}
			set = true
			st := &r.arm.static
			o.Disabled = mergeMap(o.Disabled, st.Disabled)
			o.Enabled = mergeMap(o.Enabled, st.Enabled)
			o.PerChannel = mergeMap(o.PerChannel, st.PerChannel)
			o.Quota = mergeMap(o.Quota, st.Quota)
			o.ChannelBudget = mergeMap(o.ChannelBudget, st.ChannelBudget)
		}
		if set {
			p.over = o
		}
	}
	if debug {
		p.versions = map[string]string{}
		if mf.ID != 0 {
			p.versions[string(lr.ModelMF)] = mf.Version
		}
		if ncf.ID != 0 {
			p.versions[string(lr.ModelNCF)] = ncf.Version
		}
		if p.weights != nil {
			p.versions["rerank"] = p.weights.ModelVersion()
		}
	}
	return p
}

// mergeMap returns dst with src's entries added (a new map when dst is
// nil and src is not empty; src is never modified).
func mergeMap[V any](dst, src map[string]V) map[string]V {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]V, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// assignment is how one request is served: one plan (a), or two
// interleaved (a and b, teams named by teams), with what the page and
// its impressions say of it.
type assignment struct {
	a, b        plan
	interleave  bool
	teams       [2]string
	assignments []lr.Assignment      // the experiments whose arms served (Page.Assignments)
	expTag      string               // Impression.Experiment
	armTag      string               // Impression.Arm
	tagTeams    bool                 // Impression.Team: expTag is the interleaving experiment
	debug       []lr.ExperimentDebug // for a debug page
}

// assign places req's user in the experiments serving now (or follows
// the request's arm override) and resolves the arms' versions. With no
// experiments it returns the zero assignment without allocating. An
// override naming no experiment or arm held is EINVALID.
func (s *Service) assign(req *lr.RecommendRequest) (assignment, error) {
	var as assignment
	var snap *expSnapshot
	if s.cfg.Experiments != nil {
		snap = s.cfg.Experiments.cur.Load()
	}
	if req.Arm != "" {
		return s.assignOverride(req, snap)
	}
	if snap == nil || len(snap.exps) == 0 {
		return as, nil
	}
	now := s.cfg.Now()
	var ab []resolvedArm
	var inter *servedExp
	for _, e := range snap.exps {
		if e.Status != lr.ExperimentRunning || now.Before(e.Start) || (!e.End.IsZero() && !now.Before(e.End)) {
			continue
		}
		i := experiment.ArmOf(&e.Experiment, req.User)
		if i < 0 {
			continue
		}
		if e.Mode == lr.ModeInterleave {
			if inter != nil {
				// A user in two interleaving experiments (different layers)
				// is interleaved by the first only.
				s.fallback(&as, req.Debug, e, "", FallbackInterleaveOverlap, "the user is already in interleaving experiment "+inter.Name, false)
				continue
			}
			inter = e
			continue
		}
		arm := e.arms[i]
		r, reason, why := s.resolve(arm)
		if reason != "" {
			s.fallback(&as, req.Debug, e, arm.name, reason, why, false)
			continue
		}
		ab = append(ab, r)
		s.served(&as, req.Debug, e, arm.name, false, r)
	}
	if inter != nil {
		s.interleaveWith(&as, req.Debug, inter, ab, false)
	} else {
		as.a = planOf(ab, req.Debug)
	}
	s.tag(&as)
	return as, nil
}

// interleaveWith plans e's two arms, each combined with the arms of the
// other layers (base); when an arm's version does not serve, the user
// gets base alone.
func (s *Service) interleaveWith(as *assignment, debug bool, e *servedExp, base []resolvedArm, override bool) {
	ra, reason, why := s.resolve(e.arms[0])
	arm := e.arms[0].name
	if reason == "" {
		var rb resolvedArm
		rb, reason, why = s.resolve(e.arms[1])
		if reason == "" {
			as.interleave = true
			as.teams = [2]string{e.arms[0].name, e.arms[1].name}
			as.a = planOf(append(slices.Clip(base), ra), debug)
			as.b = planOf(append(slices.Clip(base), rb), debug)
			as.assignments = append(as.assignments, lr.Assignment{Experiment: e.Name, Mode: e.Mode})
			if !override {
				for _, team := range as.teams {
					s.expRequests.WithLabelValues(e.Name, team).Inc()
				}
			}
			if debug {
				v := map[string]string{}
				for k, x := range as.a.versions {
					v[as.teams[0]+"."+k] = x
				}
				for k, x := range as.b.versions {
					v[as.teams[1]+"."+k] = x
				}
				as.debug = append(as.debug, lr.ExperimentDebug{Assignment: lr.Assignment{Experiment: e.Name, Mode: e.Mode}, Override: override, Versions: v})
			}
			return
		}
		arm = e.arms[1].name
	}
	s.fallback(as, debug, e, arm, reason, why, override)
	as.a = planOf(base, debug)
}

// served records that arm of e serves the request.
func (s *Service) served(as *assignment, debug bool, e *servedExp, arm string, override bool, r resolvedArm) {
	as.assignments = append(as.assignments, lr.Assignment{Experiment: e.Name, Mode: e.Mode, Arm: arm})
	s.expRequests.WithLabelValues(e.Name, arm).Inc()
	if debug {
		p := planOf([]resolvedArm{r}, true)
		as.debug = append(as.debug, lr.ExperimentDebug{Assignment: lr.Assignment{Experiment: e.Name, Mode: e.Mode, Arm: arm}, Override: override, Versions: p.versions})
	}
}

// fallback records that the user's arm of e cannot serve here: counted,
// and said on a debug page; the page gets the default configuration for
// e's parameters and its impressions do not name e.
func (s *Service) fallback(as *assignment, debug bool, e *servedExp, arm, reason, why string, override bool) {
	s.expFallbacks.WithLabelValues(e.Name, arm, reason).Inc()
	s.cfg.Log.Debug("experiment arm falls back to the default configuration", "experiment", e.Name, "arm", arm, "reason", why)
	if debug {
		as.debug = append(as.debug, lr.ExperimentDebug{Assignment: lr.Assignment{Experiment: e.Name, Mode: e.Mode, Arm: arm}, Fallback: why, Override: override})
	}
}

// tag sets the impressions' experiment and arm: an impression names one
// experiment (the impressions topic's schema), the first that served in
// layer order; an interleaving experiment's arm is empty (each position
// names its team). The experiments of the later layers go unnamed for
// that user's pages: assignment is independent across salts, so each
// experiment loses the same share of users from every arm, which leaves
// its comparison unbiased (with fewer users).
func (s *Service) tag(as *assignment) {
	if len(as.assignments) > 0 {
		as.expTag, as.armTag = as.assignments[0].Experiment, as.assignments[0].Arm
		as.tagTeams = as.assignments[0].Mode == lr.ModeInterleave
	}
}

// assignOverride serves the arm (or the interleaved pair) req.Arm names,
// alone: the user's other assignments do not apply, and the impressions
// name no experiment.
func (s *Service) assignOverride(req *lr.RecommendRequest, snap *expSnapshot) (assignment, error) {
	var as assignment
	name, armName, hasArm := strings.Cut(req.Arm, "/")
	var e *servedExp
	if snap != nil {
		e = snap.byName[name]
	}
	if e == nil {
		return as, lr.Errorf(lr.EINVALID, "field \"arm\": no experiment %q on this replica (replicas hold running and paused experiments, not drafts or stopped ones)", name)
	}
	if !hasArm {
		if e.Mode != lr.ModeInterleave {
			return as, lr.Errorf(lr.EINVALID, "field \"arm\": experiment %s is %s: name one of its arms as %s/ARM (arms: %s)", e.Name, e.Mode, e.Name, armNames(e))
		}
		s.interleaveWith(&as, req.Debug, e, nil, true)
		return as, nil
	}
	i := slices.IndexFunc(e.arms, func(a *servedArm) bool { return a.name == armName })
	if i < 0 {
		return as, lr.Errorf(lr.EINVALID, "field \"arm\": experiment %s has no arm %q (arms: %s)", e.Name, armName, armNames(e))
	}
	r, reason, why := s.resolve(e.arms[i])
	if reason != "" {
		s.fallback(&as, req.Debug, e, armName, reason, why, true)
		return as, nil
	}
	as.assignments = append(as.assignments, lr.Assignment{Experiment: e.Name, Mode: e.Mode, Arm: armName})
	if req.Debug {
		p := planOf([]resolvedArm{r}, true)
		as.debug = append(as.debug, lr.ExperimentDebug{Assignment: lr.Assignment{Experiment: e.Name, Mode: e.Mode, Arm: armName}, Override: true, Versions: p.versions})
	}
	as.a = planOf([]resolvedArm{r}, false)
	return as, nil
}

func armNames(e *servedExp) string {
	names := make([]string, len(e.arms))
	for i, a := range e.arms {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

// interleaveRNG is the coin of one page's team draft, seeded from its
// request id: the same request id and rankings give the same page.
func interleaveRNG(rid string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(rid))
	x := h.Sum64()
	return rand.New(rand.NewPCG(x, x^0x9e3779b97f4a7c15))
}
