package main

import (
	"strings"
	"testing"
)

// --index-recall is a recall in (0, 1], 0 turning the measured planning
// off; it reaches index.Params.RecallTarget (negative for off).
func TestIndexRecallFlag(t *testing.T) {
	for _, v := range []string{"-0.1", "1.5", "NaN"} {
		app, _, errb := testApp(nil)
		if _, err := parseServiceFlags(app, "serve", []string{"--index-recall", v}); err != errUsage || !strings.Contains(errb.String(), "index-recall") {
			t.Errorf("--index-recall %s: err %v, stderr %q", v, err, errb)
		}
	}
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		flag   float64
		target float64
	}{
		{nil, nil, 0.95, 0.95},
		{[]string{"--index-recall", "0.9"}, nil, 0.9, 0.9},
		{nil, map[string]string{"LIVERECALL_INDEX_RECALL": "0"}, 0, -1},
	} {
		app, _, _ := testApp(tc.env)
		cfg, err := parseServiceFlags(app, "serve", tc.args)
		if err != nil || cfg.index.recallTarget != tc.flag || indexRecallTarget(cfg.index.recallTarget) != tc.target {
			t.Errorf("%v %v: flag %v (%v), want %v → %v", tc.args, tc.env, cfg.index.recallTarget, err, tc.flag, tc.target)
		}
	}
}
