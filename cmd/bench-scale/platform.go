package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
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
// bytes per user).
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

// load writes the platform: the full versions' vectors by binary COPY from
// workers goroutines (each generating and writing one chunk of chunkRows at
// a time), then the small versions as copies inside the server.
func (p *platform) load(ctx context.Context, db *postgres.DB, workers int) (loadReport, error) {
	var rep loadReport
	p.full, p.small = map[lr.ModelKind]lr.ModelVersion{}, map[lr.ModelKind]lr.ModelVersion{}
	type job struct {
		model int64
		side  lr.EmbeddingSide
		seed  uint64
		lo    int // first id of the chunk
		n     int
	}
	var jobs []job
	for ki, kind := range kinds {
		mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: kind, Version: p.label(kind, p.users), Dim: p.dim,
			Params: []byte(`{"synthetic":"bench-scale"}`)})
		if err != nil {
			return rep, err
		}
		p.full[kind] = mv
		for si, side := range []struct {
			side lr.EmbeddingSide
			n    int
		}{{lr.SideStreamer, p.streamers}, {lr.SideUser, p.users}} {
			for lo := 1; lo <= side.n; lo += chunkRows {
				jobs = append(jobs, job{mv.ID, side.side, uint64(100*ki + si + 1), lo, min(chunkRows, side.n-lo+1)})
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
	t0 := time.Now()
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
			for j := range ch {
				g.basisFor(j.seed)
				rng := rand.New(rand.NewPCG(j.seed, uint64(j.lo)))
				for i := 0; i < j.n; i++ {
					v := flat[i*p.dim : (i+1)*p.dim]
					g.fill(rng, v)
					rows[i] = lr.Embedding{ID: int64(j.lo + i), Vec: v}
				}
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
			mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: kind, Version: p.label(kind, p.smallUsers), Dim: p.dim,
				Params: []byte(`{"synthetic":"bench-scale","baseline":true}`)})
			if err != nil {
				return rep, err
			}
			p.small[kind] = mv
			src := p.full[kind].ID
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO streamer_embeddings (model_id, streamer_id, vec) SELECT $1, streamer_id, vec FROM streamer_embeddings WHERE model_id = $2`, []any{mv.ID, src}},
				{`INSERT INTO user_embeddings (model_id, user_id, vec) SELECT $1, user_id, vec FROM user_embeddings WHERE model_id = $2 AND user_id <= $3`, []any{mv.ID, src, p.smallUsers}},
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
