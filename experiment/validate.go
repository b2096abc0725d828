package experiment

import (
	"regexp"
	"slices"
	"strings"

	lr "github.com/liverecall/liverecall"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Check checks e's definition on its own — names, mode, arms, shares,
// channel names (of channels), budgets — and returns an lr.EINVALID
// error naming the first problem. It does not check that the versions the
// arms name exist (the store does, against its versions), nor overlaps
// with other experiments (Conflict).
func Check(e *lr.Experiment, channels []string) error {
	if !nameRE.MatchString(e.Name) {
		return lr.Errorf(lr.EINVALID, "experiment name %q: want 1-63 of a-z, 0-9, _, . and -, starting with a letter or digit", e.Name)
	}
	if e.Salt == "" {
		return lr.Errorf(lr.EINVALID, "experiment %s: salt is empty", e.Name)
	}
	if e.Layer != "" && !nameRE.MatchString(e.Layer) {
		return lr.Errorf(lr.EINVALID, "experiment %s: layer %q: want 1-63 of a-z, 0-9, _, . and -", e.Name, e.Layer)
	}
	switch e.Mode {
	case lr.ModeAB:
		if len(e.Arms) < 2 {
			return lr.Errorf(lr.EINVALID, "experiment %s: an A/B experiment needs at least 2 arms, has %d", e.Name, len(e.Arms))
		}
	case lr.ModeInterleave:
		if len(e.Arms) != 2 {
			return lr.Errorf(lr.EINVALID, "experiment %s: an interleaving experiment needs exactly 2 arms, has %d", e.Name, len(e.Arms))
		}
	default:
		return lr.Errorf(lr.EINVALID, "experiment %s: mode %q: want %q or %q", e.Name, e.Mode, lr.ModeAB, lr.ModeInterleave)
	}
	if !e.End.IsZero() && !e.End.After(e.Start) {
		return lr.Errorf(lr.EINVALID, "experiment %s: end %s is not after start %s", e.Name, e.End.Format("2006-01-02T15:04:05Z07:00"), e.Start.Format("2006-01-02T15:04:05Z07:00"))
	}
	total, controls := 0, 0
	seen := map[string]bool{}
	for _, a := range e.Arms {
		if !nameRE.MatchString(a.Name) {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm name %q: want 1-63 of a-z, 0-9, _, . and -", e.Name, a.Name)
		}
		if seen[a.Name] {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s named twice", e.Name, a.Name)
		}
		seen[a.Name] = true
		if !(a.Share > 0 && a.Share <= 1) {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: share %v is not in (0, 1]", e.Name, a.Name, a.Share)
		}
		if shareBuckets(a.Share) == 0 {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: share %v is below one bucket (1/%d of traffic)", e.Name, a.Name, a.Share, Buckets)
		}
		total += shareBuckets(a.Share)
		if a.Control {
			controls++
		}
		if err := checkConfig(e.Name, a.Name, &a.Config, channels); err != nil {
			return err
		}
	}
	if total > Buckets {
		return lr.Errorf(lr.EINVALID, "experiment %s: the arms' shares sum to %.4g%% of traffic, above 100%%", e.Name, float64(total)*100/Buckets)
	}
	if controls > 1 {
		return lr.Errorf(lr.EINVALID, "experiment %s: %d arms say control, at most one may", e.Name, controls)
	}
	return nil
}

func checkConfig(exp, arm string, c *lr.ArmConfig, channels []string) error {
	known := func(what, ch string) error {
		if !slices.Contains(channels, ch) {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: %s: unknown channel %q (channels: %s)", exp, arm, what, ch, strings.Join(channels, ", "))
		}
		return nil
	}
	for _, ch := range c.Disabled {
		if err := known("disabled_channels", ch); err != nil {
			return err
		}
	}
	for _, ch := range c.Enabled {
		if err := known("enabled_channels", ch); err != nil {
			return err
		}
		if slices.Contains(c.Disabled, ch) {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: channel %s is both enabled and disabled", exp, arm, ch)
		}
	}
	for ch, n := range c.PerChannel {
		if err := known("per_channel", ch); err != nil {
			return err
		}
		if n < 1 || n > 1000 {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: per_channel %s: %d is not in [1, 1000]", exp, arm, ch, n)
		}
	}
	for ch, n := range c.Quota {
		if err := known("quota", ch); err != nil {
			return err
		}
		if n < 1 || n > 1000 {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: quota %s: %d is not in [1, 1000]", exp, arm, ch, n)
		}
	}
	for ch, ms := range c.ChannelBudgetMS {
		if err := known("channel_budget_ms", ch); err != nil {
			return err
		}
		if !(ms > 0 && ms <= 1000) {
			return lr.Errorf(lr.EINVALID, "experiment %s: arm %s: channel_budget_ms %s: %v is not in (0, 1000]", exp, arm, ch, ms)
		}
	}
	return nil
}

// Params lists the parameters e's arms set ("mf_version",
// "channel:mf", ...): two experiments in different layers that run at the
// same time must set disjoint parameters (Conflict).
func Params(e *lr.Experiment) []string {
	set := map[string]bool{}
	for _, a := range e.Arms {
		c := a.Config
		if c.MFVersion != "" {
			set["mf_version"] = true
		}
		if c.NCFVersion != "" {
			set["ncf_version"] = true
		}
		if c.RerankVersion != "" {
			set["rerank_version"] = true
		}
		for _, ch := range append(slices.Clone(c.Disabled), c.Enabled...) {
			set["channel:"+ch] = true
		}
		for ch := range c.PerChannel {
			set["per_channel:"+ch] = true
		}
		for ch := range c.Quota {
			set["quota:"+ch] = true
		}
		for ch := range c.ChannelBudgetMS {
			set["channel_budget:"+ch] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Conflict says why e cannot run beside other, an experiment that is not
// stopped, or returns nil: their windows overlap and they are in the same
// layer, or in different layers but set a parameter in common. The error
// is lr.ECONFLICT and names both.
func Conflict(e, other *lr.Experiment) error {
	if e.Name == other.Name || other.Status == lr.ExperimentStopped || !overlap(e, other) {
		return nil
	}
	la, lb := layer(e), layer(other)
	if la == lb {
		return lr.Errorf(lr.ECONFLICT, "experiment %s overlaps experiment %s in time and in layer %s: give one another layer or other dates", e.Name, other.Name, la)
	}
	pb := Params(other)
	for _, p := range Params(e) {
		if slices.Contains(pb, p) {
			return lr.Errorf(lr.ECONFLICT, "experiment %s (layer %s) and experiment %s (layer %s) both set %s while overlapping in time: layers must set disjoint parameters", e.Name, la, other.Name, lb, p)
		}
	}
	return nil
}

func layer(e *lr.Experiment) string {
	if e.Layer == "" {
		return lr.DefaultLayer
	}
	return e.Layer
}

// overlap says whether a's and b's windows share an instant (a zero End
// is open).
func overlap(a, b *lr.Experiment) bool {
	before := func(x, y *lr.Experiment) bool { return !x.End.IsZero() && !x.End.After(y.Start) }
	return !before(a, b) && !before(b, a)
}
