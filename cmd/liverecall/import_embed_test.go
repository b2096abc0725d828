package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

// writeCSV writes rows as id,v1,...,vd with a header; edit may rewrite a line.
func writeCSV(t *testing.T, dir, name string, rows []lr.Embedding) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id")
	for k := range rows[0].Vec {
		fmt.Fprintf(&b, ",f%d", k)
	}
	b.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d", r.ID)
		for _, v := range r.Vec {
			fmt.Fprintf(&b, ",%g", v)
		}
		b.WriteString("\n")
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func storedVectors(t *testing.T, db *postgres.DB, id int64, side lr.EmbeddingSide) []lr.Embedding {
	t.Helper()
	var out []lr.Embedding
	if err := db.StreamEmbeddings(context.Background(), id, side, func(id int64, vec []float32) error {
		out = append(out, lr.Embedding{ID: id, Vec: vec})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportValidatesStagesAndActivates(t *testing.T) {
	ctx := context.Background()
	db, url := openTestDB(t)
	seedHistory(t, db, embed.SyntheticHistory(4, 60, 30, 3, 8, 3))
	if code, _, errb := runCmd(t, url, "train", "--model", "mf", "--version", "v1", "--dim", "8"); code != 0 {
		t.Fatalf("train: %s", errb)
	}
	v1, _ := db.ActiveModel(ctx, lr.ModelMF)
	users, streamers := storedVectors(t, db, v1.ID, lr.SideUser), storedVectors(t, db, v1.ID, lr.SideStreamer)
	dir := t.TempDir()
	uPath, sPath := writeCSV(t, dir, "users.csv", users), writeCSV(t, dir, "streamers.csv", streamers)

	// Bad inputs: a clear error naming file and line, nothing written.
	nan := append([]lr.Embedding{}, streamers...)
	nan[1] = lr.Embedding{ID: nan[1].ID, Vec: append([]float32{}, nan[1].Vec...)}
	nanPath := writeCSV(t, dir, "nan.csv", nan)
	b, _ := os.ReadFile(nanPath)
	lines := strings.Split(string(b), "\n")
	lines[2] = strings.Replace(lines[2], ",", ",NaN,", 1)
	lines[2] = lines[2][:strings.LastIndex(lines[2], ",")]
	os.WriteFile(nanPath, []byte(strings.Join(lines, "\n")), 0o644)
	short := writeCSV(t, dir, "short.csv", []lr.Embedding{{ID: 1001, Vec: []float32{1, 2, 3}}})
	unknown := writeCSV(t, dir, "unknown.csv", append(append([]lr.Embedding{}, streamers...), lr.Embedding{ID: 999999, Vec: make([]float32, 8)}))
	dup := writeCSV(t, dir, "dup.csv", append(append([]lr.Embedding{}, streamers...), streamers[0]))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--users", uPath, "--streamers", nanPath}, "nan.csv:3: id"},
		{[]string{"--users", uPath, "--streamers", short}, "short.csv:2: id 1001 has 3 values, want dimension 8"},
		{[]string{"--users", uPath, "--streamers", unknown}, "unknown.csv:32: unknown streamer id 999999"},
		{[]string{"--users", uPath, "--streamers", dup}, "dup.csv:32: duplicate id"},
		{[]string{"--users", uPath, "--streamers", sPath, "--dim", "16"}, "users.csv:2: id 1 has 8 values, want dimension 16"},
	} {
		code, _, errb := runCmd(t, url, append([]string{"import", "--model", "mf"}, tc.args...)...)
		if code != 1 || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", tc.args, code, errb, tc.want)
		}
	}
	if got := versions(t, db, lr.ModelMF); len(got) != 1 {
		t.Fatalf("bad imports wrote versions: %v", got)
	}

	// The same vectors as the active version: not worse, activated.
	code, out, errb := runCmd(t, url, "import", "--model", "mf", "--users", uPath, "--streamers", sPath, "--version", "imp1")
	if code != 0 || !strings.Contains(out, "activated mf/imp1") {
		t.Fatalf("import: code %d out %q err %s", code, out, errb)
	}
	imp, _ := db.ActiveModel(ctx, lr.ModelMF)
	if got := storedVectors(t, db, imp.ID, lr.SideStreamer); len(got) != 30 || got[3].Vec[2] != streamers[3].Vec[2] {
		t.Fatalf("imported streamer vectors differ: %d rows", len(got))
	}
	// Random vectors are worse: staged, not activated, non-zero exit.
	rng := rand.New(rand.NewPCG(1, 1))
	noise := func(rows []lr.Embedding) []lr.Embedding {
		out := make([]lr.Embedding, len(rows))
		for k, r := range rows {
			v := make([]float32, len(r.Vec))
			for j := range v {
				v[j] = float32(rng.NormFloat64())
			}
			out[k] = lr.Embedding{ID: r.ID, Vec: v}
		}
		return out
	}
	ru, rs := writeCSV(t, dir, "ru.csv", noise(users)), writeCSV(t, dir, "rs.csv", noise(streamers))
	code, _, errb = runCmd(t, url, "import", "--model", "mf", "--users", ru, "--streamers", rs, "--version", "random", "--margin", "0")
	if code != 1 || !strings.Contains(errb, "staged but not activated") {
		t.Fatalf("random import: code %d err %s", code, errb)
	}
	if got := versions(t, db, lr.ModelMF); got["imp1"] != lr.StatusActive || got["random"] != lr.StatusStaged {
		t.Fatalf("after refused import: %v", got)
	}
}

func TestImportWithoutHistory(t *testing.T) {
	db, url := openTestDB(t)
	dir := t.TempDir()
	u := writeCSV(t, dir, "u.csv", []lr.Embedding{{ID: 1, Vec: []float32{1, 0}}, {ID: 2, Vec: []float32{0, 1}}})
	s := writeCSV(t, dir, "s.csv", []lr.Embedding{{ID: 7, Vec: []float32{1, 1}}})
	if code, _, errb := runCmd(t, url, "import", "--model", "ncf", "--users", u, "--streamers", s); code != 1 || !strings.Contains(errb, "unknown user id 1") {
		t.Fatalf("unknown ids: code %d err %s", code, errb)
	}
	// Nothing to compare with and nothing active: activated.
	if code, _, errb := runCmd(t, url, "import", "--model", "ncf", "--users", u, "--streamers", s, "--allow-unknown", "--version", "a"); code != 0 {
		t.Fatalf("first import: code %d err %s", code, errb)
	}
	// Something active but no history to compare on: refused unless forced.
	if code, _, errb := runCmd(t, url, "import", "--model", "ncf", "--users", u, "--streamers", s, "--allow-unknown", "--version", "b"); code != 1 || !strings.Contains(errb, "cannot be compared") {
		t.Fatalf("second import: code %d err %s", code, errb)
	}
	if code, _, errb := runCmd(t, url, "import", "--model", "ncf", "--users", u, "--streamers", s, "--allow-unknown", "--version", "c", "--force"); code != 0 {
		t.Fatalf("forced import: code %d err %s", code, errb)
	}
	if got := versions(t, db, lr.ModelNCF); got["a"] != lr.StatusRetired || got["b"] != lr.StatusStaged || got["c"] != lr.StatusActive {
		t.Fatalf("versions: %v", got)
	}
}
