package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

var pgLine = regexp.MustCompile(`postgres: (\d+) users, (\d+) streamers, (\d+) streams, (\d+) watch sessions, (\d+) gifts, (\d+) follows`)

func TestSimulateToPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	args := []string{"simulate", "--days", "2", "--streamers", "60", "--users", "600", "--seed", "4", "--start", "2026-02-01", "--to-postgres"}
	env := map[string]string{"DATABASE_URL": url}

	app, out, errb := testApp(env)
	if code := Run(ctx, app, args); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	m := pgLine.FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "repeat share") || !strings.Contains(out.String(), "2026-02-01 to 2026-02-03") {
		t.Fatalf("summary %q", out)
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.CountHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int64{c.Users, c.Streamers, c.Streams, c.Watches, c.Gifts, c.Follows} {
		if want, _ := strconv.ParseInt(m[i+1], 10, 64); n != want || n == 0 {
			t.Fatalf("table %d holds %d rows, the summary says %d (%q)", i, n, want, out)
		}
	}
	var outside int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM watch_sessions WHERE started_at < '2026-02-01' OR ended_at >= '2026-02-03' OR seconds <> floor(extract(epoch FROM ended_at - started_at))::int`).Scan(&outside); err != nil || outside != 0 {
		t.Fatalf("%d watch sessions outside the window or with wrong seconds (%v)", outside, err)
	}

	// A second load refuses to mix histories, unless told to replace; the
	// same seed gives the same history.
	app, _, errb = testApp(env)
	if code := Run(ctx, app, args); code != 1 || !strings.Contains(errb.String(), "--replace") {
		t.Fatalf("second load: code %d, stderr %q", code, errb)
	}
	app, out2, errb := testApp(env)
	if code := Run(ctx, app, append(args, "--replace")); code != 0 {
		t.Fatalf("replace: code %d, stderr %q", code, errb)
	}
	if m2 := pgLine.FindString(out2.String()); m2 != m[0] {
		t.Fatalf("same seed, different history: %q vs %q", m2, m[0])
	}
}

func TestSimulateEventsOutDecode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	app, out, errb := testApp(map[string]string{"LIVERECALL_SIM_STREAMERS": "30", "LIVERECALL_SIM_USERS": "300"})
	if code := Run(context.Background(), app, []string{"simulate", "--days", "1", "--events-out", path}); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if _, err := events.Decode(sc.Bytes(), time.Now(), 0); err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, sc.Text())
		}
		n++
	}
	if want := "events: " + strconv.Itoa(n) + ","; n == 0 || !strings.Contains(out.String(), want) {
		t.Fatalf("%d lines, summary %q", n, out)
	}
	if !strings.Contains(out.String(), "30 streamers, 300 users") {
		t.Fatalf("environment settings not used: %q", out)
	}
}

func TestSimulateBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"simulate", "--days", "0"},
		{"simulate", "--streamers", "0"},
		{"simulate", "--start", "yesterday"},
		{"simulate", "--seed", "-3"},
	} {
		app, _, errb := testApp(nil)
		if code := Run(context.Background(), app, args); code != 1 || !strings.Contains(errb.String(), "liverecall simulate: --") {
			t.Errorf("%v: code %d, stderr %q", args, code, errb)
		}
	}
	app, _, _ := testApp(nil)
	if code := Run(context.Background(), app, []string{"simulate", "extra"}); code != 2 {
		t.Errorf("extra argument: code %d", code)
	}
}

// countingApplier counts what a live consumer applies.
type countingApplier struct {
	mu      sync.Mutex
	n       int
	started int
	ids     map[string]bool
}

func (a *countingApplier) Apply(evs []lr.Event) live.ApplyStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range evs {
		if !a.ids[e.ID] {
			a.ids[e.ID] = true
			a.n++
			if e.Type == lr.EventStreamStarted {
				a.started++
			}
		}
	}
	return live.ApplyStats{Applied: len(evs)}
}

func (a *countingApplier) Expire(time.Time) int { return 0 }

func (a *countingApplier) count() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n, a.started
}

var kafkaLine = regexp.MustCompile(`kafka: (\d+) events published`)
var liveLine = regexp.MustCompile(`live from .*: (\d+) events \((\d+) streams already live announced\).*, (\d+) published`)

// History and then a short live run go to Kafka, where the service's own
// consumer reads back every event that was also written to the file.
func TestSimulateToKafkaWithLive(t *testing.T) {
	kc := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 4})
	brokers := strings.Join(kc.Brokers(), ",")
	path := filepath.Join(t.TempDir(), "events.jsonl")
	app, out, errb := testApp(map[string]string{"LIVERECALL_KAFKA_BROKERS": brokers})
	args := []string{"simulate", "--days", "1", "--streamers", "400", "--users", "2000", "--to-kafka", "--live", "1s", "--events-out", path}
	if code := Run(context.Background(), app, args); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	hm, lm := kafkaLine.FindStringSubmatch(out.String()), liveLine.FindStringSubmatch(out.String())
	if hm == nil || lm == nil {
		t.Fatalf("summary %q", out)
	}
	hist, _ := strconv.Atoi(hm[1])
	liveN, _ := strconv.Atoi(lm[1])
	reopened, _ := strconv.Atoi(lm[2])
	published, _ := strconv.Atoi(lm[3])
	if hist < 1000 || published != liveN || reopened == 0 {
		t.Fatalf("history %d, live %d events (%d reopened), %d published: %q", hist, liveN, reopened, published, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := map[string]bool{}
	for _, l := range lines {
		e, err := events.Decode([]byte(l), time.Now(), 0)
		if err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		want[e.ID] = true
	}
	if len(lines) != hist+liveN {
		t.Fatalf("file holds %d events, the summary says %d + %d", len(lines), hist, liveN)
	}

	a := &countingApplier{ids: map[string]bool{}}
	c, err := events.NewLiveConsumer(events.LiveConfig{Brokers: kc.Brokers(), Lookback: time.Hour}, a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := a.count()
		if n == len(want) {
			break
		}
		if n > len(want) || time.Now().After(deadline) {
			t.Fatalf("consumer read %d distinct events, want %d", n, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range want {
		if !a.ids[id] {
			t.Fatalf("event %s written to the file never reached the consumer", id)
		}
	}
}
