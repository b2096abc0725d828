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
var liveLine = regexp.MustCompile(`live from (\S+) for .*: (\d+) events \((\d+) streams? already live announced, with (\d+) viewers? already watching\).*, (\d+) published`)
var simLine = regexp.MustCompile(`simulated \d+ days? \((\d{4}-\d\d-\d\d) to`)

// readTopic runs the service's live consumer on the events topic with
// lookback as of now until it has read want distinct events (or, with
// want < 0, until it read nothing new for a while), and returns their ids.
func readTopic(t *testing.T, brokers []string, now time.Time, lookback time.Duration, want int) map[string]bool {
	t.Helper()
	a := &countingApplier{ids: map[string]bool{}}
	c, err := events.NewLiveConsumer(events.LiveConfig{Brokers: brokers, Lookback: lookback, Now: func() time.Time { return now }}, a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, _ := a.count()
		if n == want {
			break
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("consumer read %d distinct events, want %d", n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing more comes.
	time.Sleep(500 * time.Millisecond)
	if n, _ := a.count(); n != want {
		t.Fatalf("consumer read %d distinct events, want %d", n, want)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids
}

// eventsIn decodes a JSON-lines events file.
func eventsIn(t *testing.T, path string) []lr.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []lr.Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		e, err := events.Decode([]byte(l), time.Now(), 0)
		if err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		evs = append(evs, e)
	}
	return evs
}

// The live phase after a seeded history: it goes on with the world the
// seed recorded in PostgreSQL (same start, whatever today is), publishes
// only the live phase to Kafka (the announcements of what is live, then the
// live events), and the service's consumer reads back exactly that: none of
// the history a restart within the lookback would otherwise replay as live.
func TestSimulateToKafkaWithLive(t *testing.T) {
	kc := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 4})
	url := pgtest.New(t)
	env := map[string]string{"LIVERECALL_KAFKA_BROKERS": strings.Join(kc.Brokers(), ","), "DATABASE_URL": url,
		"LIVERECALL_SIM_STREAMERS": "400", "LIVERECALL_SIM_USERS": "2000"}
	// A seed three days back: a later run must not fall back on "--days days
	// before today".
	seedStart := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3).Format(time.DateOnly)
	app, out, errb := testApp(env)
	if code := Run(context.Background(), app, []string{"simulate", "--days", "1", "--start", seedStart, "--to-postgres"}); code != 0 {
		t.Fatalf("seed: code %d, stderr %q", code, errb)
	}
	if m := simLine.FindStringSubmatch(out.String()); m == nil || m[1] != seedStart {
		t.Fatalf("seed summary %q", out)
	}

	path := filepath.Join(t.TempDir(), "events.jsonl")
	app, out, errb = testApp(env)
	if code := Run(context.Background(), app, []string{"simulate", "--days", "1", "--to-kafka", "--live", "1s", "--events-out", path}); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	if m := simLine.FindStringSubmatch(out.String()); m == nil || m[1] != seedStart {
		t.Fatalf("the live run did not go on with the seeded world (start %s): %q", seedStart, out)
	}
	lm := liveLine.FindStringSubmatch(out.String())
	if lm == nil || kafkaLine.MatchString(out.String()) || !strings.Contains(out.String(), "the history is not published") {
		t.Fatalf("summary %q", out)
	}
	liveFrom, err := time.Parse(time.RFC3339, lm[1])
	if err != nil {
		t.Fatal(err)
	}
	liveN, _ := strconv.Atoi(lm[2])
	reopened, _ := strconv.Atoi(lm[3])
	viewers, _ := strconv.Atoi(lm[4])
	published, _ := strconv.Atoi(lm[5])
	if published != liveN || reopened == 0 || viewers == 0 {
		t.Fatalf("live %d events (%d streams and %d viewers announced), %d published: %q", liveN, reopened, viewers, published, out)
	}
	evs := eventsIn(t, path)
	live := evs[len(evs)-liveN:]
	for _, e := range evs[:len(evs)-liveN] {
		if !e.TS.Before(liveFrom.Add(time.Second)) {
			t.Fatalf("history event %+v after the live start %s", e, liveFrom)
		}
	}
	got := readTopic(t, kc.Brokers(), time.Now(), time.Hour, published)
	for _, e := range live {
		if !got[e.ID] {
			t.Fatalf("live event %+v never reached the consumer", e)
		}
	}
}

// Without --live, the history goes to Kafka with each record stamped with
// its event's time: a replica starting with a lookback replays only the
// events of that lookback (by Kafka's offsets for time), not the whole
// history that was published a moment ago.
func TestSimulateToKafkaStampsEventTime(t *testing.T) {
	kc := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 4})
	path := filepath.Join(t.TempDir(), "events.jsonl")
	app, out, errb := testApp(map[string]string{"LIVERECALL_KAFKA_BROKERS": strings.Join(kc.Brokers(), ","), "DATABASE_URL": pgtest.NewEmpty(t)})
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	args := []string{"simulate", "--days", "1", "--start", start.Format(time.DateOnly), "--streamers", "300", "--users", "1500", "--to-kafka", "--events-out", path}
	if code := Run(context.Background(), app, args); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	hm := kafkaLine.FindStringSubmatch(out.String())
	evs := eventsIn(t, path)
	if hm == nil || hm[1] != strconv.Itoa(len(evs)) {
		t.Fatalf("summary %q, %d events in the file", out, len(evs))
	}
	// A replica whose clock says 23:00 of the simulated day, with a 2 h
	// lookback, reads the events from 21:00 on.
	cut := start.Add(21 * time.Hour)
	want := 0
	for _, e := range evs {
		if !e.TS.Before(cut) {
			want++
		}
	}
	if want == 0 || want > len(evs)/3 {
		t.Fatalf("%d of %d events after %s", want, len(evs), cut)
	}
	got := readTopic(t, kc.Brokers(), cut.Add(2*time.Hour), 2*time.Hour, want)
	for _, e := range evs {
		if got[e.ID] != !e.TS.Before(cut) {
			t.Fatalf("event %+v read %v by a replica replaying from %s", e, got[e.ID], cut)
		}
	}
}
