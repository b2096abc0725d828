package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/embed"
)

// writeNCF writes a small NCF-format dataset: 20 users in two taste groups
// over 40 items, and returns its path prefix.
func writeNCF(t *testing.T, badTrainLine bool) string {
	t.Helper()
	dir := t.TempDir()
	var tr, te, ne strings.Builder
	for u := 0; u < 20; u++ {
		base := (u % 2) * 20
		for j := 0; j < 8; j++ {
			fmt.Fprintf(&tr, "%d\t%d\t1\t0\n", u, base+(u+j)%20)
		}
		pos := base + (u+8)%20
		fmt.Fprintf(&te, "%d\t%d\t1\t0\n", u, pos)
		fmt.Fprintf(&ne, "(%d,%d)", u, pos)
		for j := 0; j < 12; j++ {
			fmt.Fprintf(&ne, "\t%d", (base+20+j)%40)
		}
		ne.WriteString("\n")
	}
	if badTrainLine {
		tr.WriteString("3\tseven\t1\t0\n")
	}
	prefix := filepath.Join(dir, "tiny")
	for suffix, s := range map[string]string{".train.rating": tr.String(), ".test.rating": te.String(), ".test.negative": ne.String()} {
		if err := os.WriteFile(prefix+suffix, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return prefix
}

func TestEvalJSONOneObjectPerModel(t *testing.T) {
	prefix := writeNCF(t, false)
	app, out, errb := testApp(nil)
	code := Run(context.Background(), app, []string{"eval", "--format", "ncf", "--train", prefix + ".train.rating",
		"--test", prefix + ".test.rating", "--negatives", prefix + ".test.negative",
		"--model", "pop,als,bpr,ncf", "--json", "--dim", "4", "--epochs", "2"})
	if code != 0 {
		t.Fatalf("code %d, stderr %s", code, errb)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 JSON lines, got %q", out)
	}
	for i, model := range []string{"pop", "als", "bpr", "ncf"} {
		var obj map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &obj); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		for _, k := range []string{"hr@1", "hr@5", "hr@10", "ndcg@1", "ndcg@5", "ndcg@10", "train_s"} {
			if _, ok := obj[k].(float64); !ok {
				t.Errorf("%s: key %q missing or not a number in %s", model, k, lines[i])
			}
		}
		if obj["model"] != model || len(obj) != 8 {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	// The taste groups are learnable: ALS beats chance (10/13) even after 2 epochs at dim 4.
	var als map[string]float64
	_ = json.Unmarshal([]byte(strings.Replace(lines[1], `"model":"als",`, "", 1)), &als)
	if als["hr@10"] < .8 {
		t.Errorf("als hr@10 = %v on separable data; %s", als["hr@10"], out)
	}
}

func TestEvalTableAndErrors(t *testing.T) {
	prefix := writeNCF(t, false)
	app, out, errb := testApp(nil)
	if code := Run(context.Background(), app, []string{"eval", "--dataset", prefix, "--model", "pop"}); code != 0 || !strings.Contains(out.String(), "HR@10") {
		t.Fatalf("table: code %d out %q err %q", code, out, errb)
	}
	bad := writeNCF(t, true)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--dataset", bad, "--model", "als"}, 1, "tiny.train.rating:161: item id \"seven\""},
		{[]string{"eval", "--dataset", prefix, "--model", "svd"}, 2, "unknown --model \"svd\""},
		{[]string{"eval", "--train", prefix + ".train.rating"}, 2, "are required"},
		{[]string{"eval", "--dataset", prefix, "--format", "csv"}, 2, "unknown --format"},
	} {
		app, _, errb := testApp(nil)
		if code := Run(context.Background(), app, tc.args); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errb, tc.want)
		}
	}
}

func TestEvalLiveOnPostgresHistory(t *testing.T) {
	db, url := openTestDB(t)
	seedHistory(t, db, embed.SyntheticHistory(6, 60, 30, 3, 8, 3))
	code, out, errb := runCmd(t, url, "eval", "--format", "live", "--model", "pop,als", "--json", "--dim", "8")
	if code != 0 {
		t.Fatalf("code %d err %s", code, errb)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	var res []map[string]any
	for _, l := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		for _, k := range []string{"hr@10", "ndcg@10", "repeat_hr@10", "new_hr@10", "mean_live", "train_s"} {
			if _, ok := obj[k].(float64); !ok {
				t.Fatalf("key %q missing in %s", k, l)
			}
		}
		res = append(res, obj)
	}
	if res[0]["model"] != "pop" || res[1]["model"] != "als" || res[1]["ndcg@10"].(float64) <= res[0]["ndcg@10"].(float64) {
		t.Fatalf("als should beat pop on planted groups: %s", out)
	}
	if code, out, _ := runCmd(t, url, "eval", "--format", "live", "--model", "als", "--dim", "8"); code != 0 || !strings.Contains(out, "rep HR@10") {
		t.Fatalf("table: code %d out %q", code, out)
	}
	if code, _, errb := runCmd(t, url, "eval", "--format", "live", "--model", "bpr"); code != 2 || !strings.Contains(errb, "--format live takes") {
		t.Fatalf("bpr on live: code %d err %s", code, errb)
	}
}
