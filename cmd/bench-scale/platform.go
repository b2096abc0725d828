package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

const (
	rank      = 12     // the synthetic vectors are rank-12 plus noise, like trained ones
	chunkRows = 10_000 // rows per COPY: a worker holds one chunk at a time
)

var kinds = []lr.ModelKind{lr.ModelMF, lr.ModelNCF}

// embeddingTables are the tables the platform fills (migrations/001_schema.sql).
var embeddingTables = []struct{ table, id string }{{"user_embeddings", "user_id"}, {"streamer_embeddings", "streamer_id"}}

// withDatabase returns base with its database name replaced by name.
func withDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-database-url must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// createDatabase makes a fresh database name on the server of base (dropping
// one left by an earlier run) and migrates it. With reuse, an existing
// database is kept as it is. It reports whether the database existed.
func createDatabase(ctx context.Context, base, name string, reuse bool) (string, bool, error) {
	if !dbName.MatchString(name) {
		return "", false, fmt.Errorf("-db %q: use lower-case letters, digits and _", name)
	}
	target, err := withDatabase(base, name)
	if err != nil {
		return "", false, err
	}
	maint, err := postgres.Open(ctx, base)
	if err != nil {
		return "", false, err
	}
	defer maint.Close()
	var exists bool
	if err := maint.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", false, err
	}
	if exists && !reuse {
		fmt.Fprintf(os.Stderr, "dropping database %s left by an earlier run (-reuse keeps it)\n", name)
		if _, err := maint.Pool.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			return "", false, err
		}
		exists = false
	}
	if !exists {
		if _, err := maint.Pool.Exec(ctx, `CREATE DATABASE `+name); err != nil {
			return "", false, err
		}
	}
	if _, err := postgres.Migrate(ctx, target, nil); err != nil {
		return "", false, err
	}
	return target, exists, nil
}

// dropDatabase drops name on the server of base.
func dropDatabase(ctx context.Context, base, name string) error {
	maint, err := postgres.Open(ctx, base)
	if err != nil {
		return err
	}
	defer maint.Close()
	_, err = maint.Pool.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	return err
}

// platform is the synthetic platform's model versions: one MF and one NCF
// version over every user ("full"), and one of each over the first
// smallUsers users with the same streamer vectors ("small", the baseline of
// bytes per user). Both NCF versions have the same NeuMF scorer (see
// synthNeuMF), so the replica reranks with per-user NeuMF weights read from
// the store.
type platform struct {
	users, streamers, smallUsers, dim int
	full, small                       map[lr.ModelKind]lr.ModelVersion
}

func (p *platform) label(kind lr.ModelKind, users int) string {
	return fmt.Sprintf("scale-%s-u%d-s%d-d%d", kind, users, p.streamers, p.dim)
}

// loadReport says what loading took.
type loadReport struct {
	Reused      bool
	Rows        int64 // vectors written by COPY
	CopySeconds float64
	KeySeconds  float64 // building the primary keys after the load
	ScorerBytes int64   // the NCF versions' NeuMF scorer
	ScorerSecs  float64 // generating and storing it (for each NCF version)
	SmallRows   int64   // vectors of the small versions (copied inside the server)
	SmallSecs   float64
	DBBytes     int64
}

// find looks the four versions up by label; ok when all exist with the
// expected counts.
func (p *platform) find(ctx context.Context, db *postgres.DB) (bool, error) {
	p.full, p.small = map[lr.ModelKind]lr.ModelVersion{}, map[lr.ModelKind]lr.ModelVersion{}
	for _, kind := range kinds {
		mvs, err := db.ListModels(ctx, kind)
		if err != nil {
			return false, err
		}
		for _, mv := range mvs {
			switch mv.Version {
			case p.label(kind, p.users):
				p.full[kind] = mv
			case p.label(kind, p.smallUsers):
				p.small[kind] = mv
			}
		}
	}
	check := func(set map[lr.ModelKind]lr.ModelVersion, users int) (bool, error) {
		for _, kind := range kinds {
			mv, ok := set[kind]
			if !ok {
				return false, nil
			}
			for side, want := range map[lr.EmbeddingSide]int{lr.SideUser: users, lr.SideStreamer: p.streamers} {
				n, err := db.CountEmbeddings(ctx, mv.ID, side)
				if err != nil || n != int64(want) {
					return false, err
				}
			}
			if kind == lr.ModelNCF {
				// (A platform written before the NCF versions had a scorer.)
				var n int
				err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM model_scorers WHERE model_id = $1 AND format = $2`, mv.ID, embed.ScorerFormat).Scan(&n)
				if err != nil || n != 1 {
					return false, err
				}
			}
		}
		return true, nil
	}
	// A run that failed while building the keys left the rows without them.
	var keys int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conname IN ('user_embeddings_pkey', 'streamer_embeddings_pkey')`).Scan(&keys); err != nil || keys != 2 {
		return false, err
	}
	ok, err := check(p.full, p.users)
	if !ok || err != nil || p.smallUsers == 0 {
		return ok, err
	}
	return check(p.small, p.smallUsers)
}

// Seeds of the generated vectors, per (model, side).
func vecSeed(kind lr.ModelKind, side lr.EmbeddingSide) uint64 {
	ki, si := slices.Index(kinds, kind), 0
	if side == lr.SideUser {
		si = 1
	}
	return uint64(100*ki + si + 1)
}

// ncfSeed draws the NCF versions' dense weights and streamers' MLP
// embeddings.
const ncfSeed = 4242

// fillChunk writes the vectors of ids lo…lo+n-1 of a (model, side) seed
// to flat (n × dim), one chunk's worth: the same for the same arguments.
func fillChunk(g *vecGen, seed uint64, lo, n int, flat []float32) {
	g.basisFor(seed)
	rng := rand.New(rand.NewPCG(seed, uint64(lo)))
	for i := 0; i < n; i++ {
		g.fill(rng, flat[i*g.dim:(i+1)*g.dim])
	}
}

// genRows writes to rows the vectors of ids lo…lo+len(rows)-1 of a (model,
// side) seed, in flat and mlp (room for len(rows) vectors each). An NCF
// user's (ncfUser) vector is its retrieval vector hG ⊙ p_u and its MLP
// embedding is drawn too.
func genRows(g *vecGen, nmf *synthNeuMF, ncfUser bool, seed uint64, lo int, rows []lr.Embedding, flat, mlp []float32) {
	n, d, e := len(rows), g.dim, nmf.mlpDim()
	fillChunk(g, seed, lo, n, flat)
	if ncfUser {
		fillMLP(rand.New(rand.NewPCG(seed, uint64(lo)|1<<62)), mlp[:n*e])
	}
	for i := range rows {
		v := flat[i*d : (i+1)*d]
		rows[i] = lr.Embedding{ID: int64(lo + i), Vec: v}
		if ncfUser {
			for f, h := range nmf.hG {
				v[f] *= h
			}
			rows[i].MLP = mlp[i*e : (i+1)*e]
		}
	}
}

// ncfScorer encodes the NCF versions' NeuMF scorer: the streamers' GMF
// embeddings as the workers write them, chunk by chunk.
func (p *platform) ncfScorer(nmf *synthNeuMF) ([]byte, error) {
	g := newVecGen(p.dim)
	qg := make([]float32, p.streamers*p.dim)
	seed := vecSeed(lr.ModelNCF, lr.SideStreamer)
	for lo := 1; lo <= p.streamers; lo += chunkRows {
		n := min(chunkRows, p.streamers-lo+1)
		fillChunk(g, seed, lo, n, qg[(lo-1)*p.dim:(lo-1+n)*p.dim])
	}
	return nmf.scorer(qg, ncfSeed)
}

// load writes the platform: the versions (the NCF ones with their NeuMF
// scorer, see synthNeuMF), then the full versions' vectors by binary COPY
// from workers goroutines (each generating and writing one chunk of
// chunkRows at a time), then the small versions' vectors as copies inside
// the server.
func (p *platform) load(ctx context.Context, db *postgres.DB, workers int) (loadReport, error) {
	var rep loadReport
	p.full, p.small = map[lr.ModelKind]lr.ModelVersion{}, map[lr.ModelKind]lr.ModelVersion{}
	nmf := newSynthNeuMF(p.dim, ncfSeed)
	t0 := time.Now()
	scorer, err := p.ncfScorer(nmf)
	if err != nil {
		return rep, err
	}
	rep.ScorerBytes = int64(len(scorer))
	for _, kind := range kinds {
		params := map[string]any{"synthetic": "bench-scale"}
		if kind == lr.ModelNCF {
			params["trainer"], params["layers"], params["scorer_format"], params["scorer_bytes"] = "neumf", nmf.layers, embed.ScorerFormat, len(scorer)
		}
		raw, err := json.Marshal(params)
		if err != nil {
			return rep, err
		}
		for _, set := range []struct {
			m     map[lr.ModelKind]lr.ModelVersion
			users int
		}{{p.full, p.users}, {p.small, p.smallUsers}} {
			if set.users == 0 {
				continue
			}
			mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: kind, Version: p.label(kind, set.users), Dim: p.dim, Params: raw})
			if err != nil {
				return rep, err
			}
			set.m[kind] = mv
			// While the version is staged: an active NCF version has its scorer.
			if kind == lr.ModelNCF {
				if err := db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, scorer); err != nil {
					return rep, err
				}
			}
		}
	}
	scorer = nil
	rep.ScorerSecs = time.Since(t0).Seconds()

	type job struct {
		model int64
		ncf   bool
		side  lr.EmbeddingSide
		seed  uint64
		lo    int // first id of the chunk
		n     int
	}
	var jobs []job
	for _, kind := range kinds {
		for _, side := range []struct {
			side lr.EmbeddingSide
			n    int
		}{{lr.SideStreamer, p.streamers}, {lr.SideUser, p.users}} {
			for lo := 1; lo <= side.n; lo += chunkRows {
				jobs = append(jobs, job{p.full[kind].ID, kind == lr.ModelNCF, side.side, vecSeed(kind, side.side), lo, min(chunkRows, side.n-lo+1)})
			}
		}
	}
	// The tables' primary keys are dropped for the load and built after
	// it in one sort (the ids are unique by construction; building the key
	// checks it), which is much faster than maintaining them row by row.
	for _, t := range embeddingTables {
		if _, err := db.Pool.Exec(ctx, `ALTER TABLE `+t.table+` DROP CONSTRAINT `+t.table+`_pkey`); err != nil {
			return rep, err
		}
	}
	t0 = time.Now()
	var written atomic.Int64
	var wg sync.WaitGroup
	ch := make(chan job)
	errc := make(chan error, workers)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int64(2 * (p.users + p.streamers))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newVecGen(p.dim)
			rows := make([]lr.Embedding, chunkRows)
			flat := make([]float32, chunkRows*p.dim)
			mlp := make([]float32, chunkRows*nmf.mlpDim())
			for j := range ch {
				genRows(g, nmf, j.ncf && j.side == lr.SideUser, j.seed, j.lo, rows[:j.n], flat, mlp)
				n, err := db.CopyEmbeddings(lctx, j.model, j.side, rows[:j.n])
				if err != nil {
					errc <- err
					cancel()
					return
				}
				if done := written.Add(n); done*10/total != (done-n)*10/total {
					fmt.Fprintf(os.Stderr, "  loaded %d of %d vectors (%.0f s)\n", done, total, time.Since(t0).Seconds())
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-lctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	select {
	case err := <-errc:
		return rep, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.Rows, rep.CopySeconds = written.Load(), time.Since(t0).Seconds()

	if p.smallUsers > 0 {
		t0 = time.Now()
		for _, kind := range kinds {
			mv, src := p.small[kind], p.full[kind].ID
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO streamer_embeddings (model_id, streamer_id, vec) SELECT $1, streamer_id, vec FROM streamer_embeddings WHERE model_id = $2`, []any{mv.ID, src}},
				{`INSERT INTO user_embeddings (model_id, user_id, vec, mlp) SELECT $1, user_id, vec, mlp FROM user_embeddings WHERE model_id = $2 AND user_id <= $3`, []any{mv.ID, src, p.smallUsers}},
			} {
				tag, err := db.Pool.Exec(ctx, q.sql, q.args...)
				if err != nil {
					return rep, err
				}
				rep.SmallRows += tag.RowsAffected()
			}
		}
		rep.SmallSecs = time.Since(t0).Seconds()
	}
	t0 = time.Now()
	for _, t := range embeddingTables {
		// One connection: the setting holds for the statement after it.
		if _, err := db.Pool.Exec(ctx, `SET maintenance_work_mem = '1GB'; ALTER TABLE `+t.table+` ADD CONSTRAINT `+t.table+`_pkey PRIMARY KEY (model_id, `+t.id+`)`); err != nil {
			return rep, err
		}
	}
	rep.KeySeconds = time.Since(t0).Seconds()
	if _, err := db.Pool.Exec(ctx, `ANALYZE`); err != nil {
		return rep, err
	}
	return rep, nil
}

// dbSize is the size of the current database in bytes.
func dbSize(ctx context.Context, db *postgres.DB) (int64, error) {
	var n int64
	err := db.Pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n, err
}

// activate makes set the active versions.
func activate(ctx context.Context, db *postgres.DB, set map[lr.ModelKind]lr.ModelVersion) error {
	for _, kind := range kinds {
		if _, err := db.ActivateModel(ctx, set[kind].ID); err != nil {
			return err
		}
	}
	return nil
}

// vecGen makes low-rank random vectors: basis · z + noise, z ~ N(0, I_rank).
type vecGen struct {
	dim   int
	seed  uint64
	basis []float32 // dim × rank
	z     []float32
}

func newVecGen(dim int) *vecGen {
	return &vecGen{dim: dim, basis: make([]float32, dim*rank), z: make([]float32, rank)}
}

// basisFor sets the basis of a (model, side) seed.
func (g *vecGen) basisFor(seed uint64) {
	if g.seed == seed {
		return
	}
	g.seed = seed
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range g.basis {
		g.basis[i] = float32(rng.NormFloat64() / 3)
	}
}

func (g *vecGen) fill(rng *rand.Rand, v []float32) {
	for j := range g.z {
		g.z[j] = float32(rng.NormFloat64())
	}
	for d := range v {
		x := float32(rng.NormFloat64() * 0.05)
		b := g.basis[d*rank : (d+1)*rank]
		for j, zj := range g.z {
			x += b[j] * zj
		}
		v[d] = x
	}
}
