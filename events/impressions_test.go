package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
)

// page returns a page of n impressions of user for request rid.
// eventually is the deadline of a wait for messages that arrive in
// milliseconds on a quiet machine; it only has to outlast a loaded one.
const eventually = 2 * time.Minute

func page(rid string, user lr.UserID, firstStreamer, n int, shownAt time.Time) []lr.Impression {
	imps := make([]lr.Impression, n)
	for j := range imps {
		imps[j] = lr.Impression{RequestID: rid, UserID: user, StreamerID: lr.StreamerID(firstStreamer + j), StreamID: lr.StreamID(1000 + firstStreamer + j),
			Position: j, Score: 1 / float64(j+2), Channels: []string{"mf", "trending"}, ModelVersions: "mf=v1", ShownAt: shownAt,
			Features: []float32{0.25, float32(j), -1}}
	}
	return imps
}

// readImpressionTopic reads every message of topic's partitions.
func readImpressionTopic(t *testing.T, brokers []string, topic string, partitions int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	var msgs []kafka.Message
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		for next := int64(0); next < last; {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("partition %d, at offset %d of %d: %v", p, next, last, err)
			}
			msgs = append(msgs, m)
			next = m.Offset + 1
		}
		r.Close()
	}
	return msgs
}

// Each Log call becomes one message: the page as a JSON array, keyed by the
// user id in the user's partition. Close writes everything buffered.
func TestImpressionProducerWritesOnePagePerMessage(t *testing.T) {
	const partitions = 3
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: partitions})
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Registerer: reg})
	now := time.Now().UTC()
	const pages = 100
	total := 0
	for i := 0; i < pages; i++ {
		n := 1 + i%20
		p.Log(page(fmt.Sprint("r", i), lr.UserID(1+i%7), 100*i+1, n, now))
		total += n
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := readImpressionTopic(t, c.Brokers(), events.DefaultImpressionTopic, partitions)
	if len(msgs) != pages {
		t.Fatalf("%d messages, want one per page: %d", len(msgs), pages)
	}
	seen := map[string]bool{}
	schema := compileSchema(t, "impression.schema.json") // the published contract
	for _, m := range msgs {
		if err := validate(t, schema, m.Value); err != nil {
			t.Errorf("offset %d: schemas/impression.schema.json refuses %s: %v", m.Offset, lr.Clip(string(m.Value), 200), err)
		}
		imps, err := events.DecodeImpressions(m.Value)
		if err != nil {
			t.Fatalf("offset %d: %v", m.Offset, err)
		}
		var i int
		fmt.Sscanf(imps[0].RequestID, "r%d", &i)
		want := page(imps[0].RequestID, lr.UserID(1+i%7), 100*i+1, 1+i%20, now)
		if !samePage(imps, want) {
			t.Fatalf("message %s decoded to\n%+v\nwant\n%+v", m.Value, imps, want)
		}
		if key := fmt.Sprint(imps[0].UserID); string(m.Key) != key || m.Partition != events.PartitionOf(m.Key, partitions) {
			t.Errorf("page of user %s has key %q in partition %d, want partition %d", key, m.Key, m.Partition, events.PartitionOf([]byte(key), partitions))
		}
		if seen[imps[0].RequestID] {
			t.Errorf("page %s written twice", imps[0].RequestID)
		}
		seen[imps[0].RequestID] = true
	}
	if got := counter(t, reg, "liverecall_impressions_sent_total"); got != float64(total) {
		t.Errorf("sent counter %v, want %d impressions", got, total)
	}
}

// LogThen hands each page back once encoded: the test then overwrites it,
// as recommend reuses it, and what was written is still the page logged.
// Pages logged after a write are encoded into the buffers of the pages
// that write sent; they too arrive intact. A dropped page is handed back
// at once.
func TestImpressionProducerHandsPagesBackAndReusesBuffers(t *testing.T) {
	const partitions = 2
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: partitions})
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Registerer: reg})
	now := time.Now().UTC()
	const rounds, perRound, n = 4, 25, 20
	var released atomic.Int64
	for r := 0; r < rounds; r++ {
		for i := r * perRound; i < (r+1)*perRound; i++ {
			imps := page(fmt.Sprint("r", i), lr.UserID(1+i%7), 100*i+1, n, now)
			p.LogThen(imps, func() {
				for j := range imps {
					imps[j].StreamerID, imps[j].Features[0] = -1, 99 // reused by the caller
				}
				released.Add(1)
			})
		}
		// Wait for this round's write, so that the next round's pages
		// are encoded into its buffers.
		deadline := time.Now().Add(eventually)
		for counter(t, reg, "liverecall_impressions_sent_total") < float64((r+1)*perRound*n) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d not written", r)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if got := released.Load(); got != rounds*perRound {
		t.Fatalf("%d pages handed back, want %d", got, rounds*perRound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := readImpressionTopic(t, c.Brokers(), events.DefaultImpressionTopic, partitions)
	if len(msgs) != rounds*perRound {
		t.Fatalf("%d messages, want %d", len(msgs), rounds*perRound)
	}
	for _, m := range msgs {
		imps, err := events.DecodeImpressions(m.Value)
		if err != nil {
			t.Fatalf("offset %d: %v", m.Offset, err)
		}
		var i int
		fmt.Sscanf(imps[0].RequestID, "r%d", &i)
		if want := page(imps[0].RequestID, lr.UserID(1+i%7), 100*i+1, n, now); !samePage(imps, want) {
			t.Fatalf("message %s decoded to\n%+v\nwant\n%+v", m.Value, imps, want)
		}
	}

	drops := prometheus.NewRegistry()
	q := events.NewImpressionProducer(events.ImpressionConfig{Brokers: []string{"127.0.0.1:1"}, Buffer: 1, Registerer: drops})
	var back atomic.Int64
	const pages = 100
	for range pages {
		q.LogThen(page("r", 1, 1, 3, now), func() { back.Add(1) })
	}
	if d := counter(t, drops, "liverecall_impressions_dropped_total"); d == 0 || back.Load() < int64(d/3) {
		t.Fatalf("%v impressions dropped, %d pages handed back: every dropped page is handed back at once", d, back.Load())
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_ = q.Close(ctx2) // no broker: it gives up
	if got := back.Load(); got != pages {
		t.Fatalf("%d of %d pages handed back after Close", got, pages)
	}
}

// With no broker reachable and a buffer of 10 pages, Log still returns at
// once; every impression is sent, failed or dropped, and drops are counted
// per impression, a page at a time.
func TestImpressionProducerNeverBlocksAndCountsDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: []string{"127.0.0.1:1"}, Buffer: 10, Registerer: reg})
	start := time.Now()
	const pages, perPage = 1000, 3
	for i := 0; i < pages; i++ {
		p.Log(page("r", 1, 1, perPage, start))
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("%d Log calls took %v", pages, took)
	}
	dropped := counter(t, reg, "liverecall_impressions_dropped_total")
	// The writer goroutine takes some pages off the buffer meanwhile.
	if dropped < pages/2*perPage || math.Mod(dropped, perPage) != 0 {
		t.Fatalf("dropped %v impressions, want whole pages of %d and at least half of %d pages with a buffer of 10", dropped, perPage, pages)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sent, failed := counter(t, reg, "liverecall_impressions_sent_total"), counter(t, reg, "liverecall_impressions_failed_total")
	if sent != 0 || dropped+failed != pages*perPage {
		t.Errorf("sent %v, failed %v, dropped %v: want 0 sent and every one of the %d impressions failed or dropped", sent, failed, dropped, pages*perPage)
	}
}

func TestImpressionProducerCloseGivesUpAtDeadline(t *testing.T) {
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: []string{"127.0.0.1:1"}, Registerer: prometheus.NewRegistry()})
	p.Log(page("r", 1, 1, 3, time.Now()))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = p.Close(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with a 100 ms deadline", took)
	}
}

// A page too big for one Kafka message, or one JSON cannot carry, fails on
// its own: the pages around it are written.
func TestImpressionProducerUnwritablePageFailsAlone(t *testing.T) {
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: 1})
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Registerer: reg})
	now := time.Now().UTC()
	huge := page(strings.Repeat("x", 1<<20), 1, 1, 2, now)
	nan := page("nan", 1, 1, 4, now)
	nan[3].Score = math.NaN()
	p.Log(page("a", 1, 1, 5, now))
	p.Log(huge)
	p.Log(nan)
	p.Log(page("b", 2, 1, 5, now))
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, failed := counter(t, reg, "liverecall_impressions_sent_total"), counter(t, reg, "liverecall_impressions_failed_total"); sent != 10 || failed != 6 {
		t.Errorf("sent %v, failed %v; want 10 and 6", sent, failed)
	}
	if msgs := readImpressionTopic(t, c.Brokers(), events.DefaultImpressionTopic, 1); len(msgs) != 2 {
		t.Errorf("%d messages in the topic, want the 2 writable pages", len(msgs))
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// samePage compares pages field by field, shown_at as instants.
func samePage(a, b []lr.Impression) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.ShownAt.Equal(y.ShownAt) {
			return false
		}
		x.ShownAt, y.ShownAt = time.Time{}, time.Time{}
		if len(x.Features) == 0 && len(y.Features) == 0 { // omitempty: [] and absent are the same
			x.Features, y.Features = nil, nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func TestImpressionPageRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.FixedZone("", 2*3600))
	for _, tc := range []struct {
		name string
		imps []lr.Impression
	}{
		{"one", page("r-1", 9, 42, 1, t0)},
		{"twenty", page("r-2", 9, 42, 20, t0.UTC())},
		{"max page", page("r-3", math.MaxInt64, 1, 200, t0)},
		{"odd values", []lr.Impression{
			{RequestID: "é\"\\<>&\u2028\x01\t", UserID: 1, StreamerID: 2, Position: 0, Score: -0.0, Channels: []string{}, ShownAt: t0},
			{RequestID: "r", UserID: 1, StreamerID: 3, Position: 1, Score: 1e-300, Channels: nil, ModelVersions: "mf=v1,ncf=v2", ShownAt: t0,
				Features: []float32{math.MaxFloat32, math.SmallestNonzeroFloat32, -0.1, 1e7, 1e-7}},
			{RequestID: "r", UserID: 1, StreamerID: 4, Position: 2, Score: 1e21, ShownAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
			{RequestID: "r", UserID: 1, StreamerID: 5, Position: 3, Score: math.MaxFloat64, ShownAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		}},
		{"contexts", []lr.Impression{
			{RequestID: "c", UserID: 1, StreamerID: 2, ShownAt: t0, Context: &lr.RequestContext{LocalTime: true, Hour: 0, Weekday: time.Sunday}},
			{RequestID: "c", UserID: 1, StreamerID: 3, Position: 1, ShownAt: t0, Context: &lr.RequestContext{Device: lr.DeviceMobile, Language: "pt", Country: "419"}},
			{RequestID: "c", UserID: 1, StreamerID: 4, Position: 2, ShownAt: t0, Context: &lr.RequestContext{}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := events.EncodeImpressions(tc.imps)
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.DecodeImpressions(b)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if !samePage(got, tc.imps) {
				t.Fatalf("round trip of %s\n got %+v\nwant %+v", b, got, tc.imps)
			}
			// encoding/json reads the page as it reads its own encoding.
			std, _ := json.Marshal(tc.imps)
			var viaStd, viaOurs []lr.Impression
			if err := json.Unmarshal(std, &viaStd); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &viaOurs); err != nil {
				t.Fatal(err)
			}
			if !samePage(viaOurs, viaStd) {
				t.Fatalf("encoding/json reads\n%s\nas %+v, and its own\n%s\nas %+v", b, viaOurs, std, viaStd)
			}
		})
	}
}

// The hand-written encoder must keep up with lr.Impression: an impression
// with every field set (by reflection, so a new field is included) survives
// a round trip.
func TestEncodeImpressionsCoversEveryField(t *testing.T) {
	var im lr.Impression
	v := reflect.ValueOf(&im).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
		case f.Kind() == reflect.String:
			f.SetString(name)
		case f.CanInt():
			f.SetInt(int64(i + 1))
		case f.CanFloat():
			f.SetFloat(float64(i) + 0.5)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf([]string{name, "x"}))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Float32:
			f.Set(reflect.ValueOf([]float32{float32(i), 0.5}))
		case f.Type() == reflect.TypeOf(&lr.RequestContext{}):
			f.Set(reflect.ValueOf(&lr.RequestContext{LocalTime: true, Hour: 23, Weekday: time.Saturday, Device: lr.DeviceTV, Language: "pt", Country: "BR"}))
		default:
			t.Fatalf("lr.Impression.%s has a type (%s) this test cannot fill: extend it and events.EncodeImpressions", name, f.Type())
		}
	}
	b, err := events.EncodeImpressions([]lr.Impression{im})
	if err != nil {
		t.Fatal(err)
	}
	var got []lr.Impression
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !samePage(got, []lr.Impression{im}) {
		t.Fatalf("EncodeImpressions dropped or changed a field:\n%s\n got %+v\nwant %+v", b, got[0], im)
	}
}

func TestEncodeImpressionsRefusesWhatJSONCannotCarry(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name string
		edit func(*lr.Impression)
		want string
	}{
		{"NaN score", func(im *lr.Impression) { im.Score = math.NaN() }, "score"},
		{"infinite feature", func(im *lr.Impression) { im.Features = []float32{1, float32(math.Inf(-1))} }, "feature 1"},
		{"year 10000", func(im *lr.Impression) { im.ShownAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "shown_at"},
	} {
		imps := page("r", 1, 1, 3, t0)
		tc.edit(&imps[2])
		_, err := events.EncodeImpressions(imps)
		if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(err.Error(), "impression 2 of 3") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want invalid naming impression 2 of 3 and %s", tc.name, err, tc.want)
		}
	}
}

// The golden page shows the wire format. An impression as producers before
// pages wrote it (json.Marshal of one lr.Impression, never released) is
// refused: the schema describes pages only.
func TestImpressionGoldenFiles(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 0, 0, 123000000, time.UTC)
	want := []lr.Impression{
		{RequestID: "r-1", UserID: 9, StreamerID: 42, StreamID: 7, Position: 0, Score: 0.93, Channels: []string{"mf", "follow"},
			ModelVersions: "mf=v3,ncf=v1,rerank=w2", ShownAt: t0, Features: []float32{0.5, 1, 0, 2.25}},
		{RequestID: "r-1", UserID: 9, StreamerID: 43, StreamID: 8, Position: 1, Score: 0.5, Channels: []string{"trending"},
			ModelVersions: "mf=v3,ncf=v1,rerank=w2", ShownAt: t0},
	}
	golden, err := os.ReadFile("testdata/impressions/page.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.EncodeImpressions(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, bytes.TrimSpace(golden)) {
		t.Errorf("EncodeImpressions gives\n%s\nwant testdata/impressions/page.json\n%s", b, golden)
	}
	if got, err := events.DecodeImpressions(golden); err != nil || !samePage(got, want) {
		t.Errorf("page.json decodes to %+v, %v; want %+v", got, err, want)
	}

	old, _ := json.Marshal(want[0])
	if got, err := events.DecodeImpressions(old); err == nil || lr.ErrorMessage(err) != "impressions: want a JSON array of impressions, got an object" {
		t.Errorf("one impression object (the form before pages) decodes to %+v, %v; want it refused", got, err)
	}
}

// goTypeName matches what Go type names look like in encoding/json's and
// time's errors.
var goTypeName = regexp.MustCompile(`Go (struct field|value)|liverecall\.|lr\.|\bint(64)?\b|float(32|64)|2006-01-02|UnmarshalJSON`)

func TestDecodeImpressionsRefusesBadMessages(t *testing.T) {
	const ok = `{"request_id":"r","user_id":1,"streamer_id":2,"stream_id":0,"position":0,"score":0.5,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}`
	for _, tc := range []struct {
		in, want string
	}{
		{``, "impressions: empty message"},
		{"  \n", "impressions: empty message"},
		{`[]`, "impressions: empty array (a page has at least one impression)"},
		{` [ ] `, "impressions: empty array (a page has at least one impression)"},
		{`null`, "impressions: want a JSON array of impressions, got null"},
		{`5`, "impressions: want a JSON array of impressions, got a number"},
		{`"[]"`, "impressions: want a JSON array of impressions, got a string"},
		{ok, "impressions: want a JSON array of impressions, got an object"},
		{`x`, "impressions: malformed JSON at byte 1: invalid character 'x' looking for beginning of value"},
		{`[null]`, "impression 0: want a JSON object, got null"},
		{`[1]`, "impression 0: want a JSON object, got a number"},
		{`[{}]`, `impression 0: field "request_id": missing`},
		{`[` + ok + `,{"request_id":"r","user_id":1,"position":1,"shown_at":"2026-11-23T18:00:00Z"}]`, `impression 1: field "streamer_id": missing`},
		{`[` + ok + `,` + strings.Replace(ok, `"r"`, `""`, 1) + `]`, `impression 1: field "request_id": must not be empty`},
		{`[` + ok + `,` + strings.Replace(ok, `"user_id":1`, `"user_id":0`, 1) + `]`, `impression 1: field "user_id": must be positive, got 0`},
		{`[` + strings.Replace(ok, `"position":0`, `"position":-1`, 1) + `]`, `impression 0: field "position": must not be negative, got -1`},
		{`[` + strings.Replace(ok, `,"shown_at":"2026-11-23T18:00:00Z"`, ``, 1) + `]`, `impression 0: field "shown_at": missing`},
		{`[` + strings.Replace(ok, `"score":0.5,`, ``, 1) + `]`, `impression 0: field "score": missing`},
		{`[` + strings.Replace(ok, `"position":0`, `"position":0,"position":0`, 1) + `]`, `impression 0: field "position": given twice`},
		{`[` + strings.Replace(ok, `{`, `{"new_field":[1,{}],`, 1) + `]`, `impression 0: field "new_field": unknown field`},
		// Type errors name the field and the JSON type, never a Go type.
		{`[` + strings.Replace(ok, `"user_id":1`, `"user_id":"1"`, 1) + `]`, `impression 0: field "user_id": want an integer, got string`},
		{`[` + strings.Replace(ok, `"user_id":1`, `"user_id":true`, 1) + `]`, `impression 0: field "user_id": want an integer, got boolean`},
		{`[` + strings.Replace(ok, `"position":0`, `"position":1.5`, 1) + `]`, `impression 0: field "position": want an integer, got number 1.5`},
		{`[` + strings.Replace(ok, `"user_id":1`, `"user_id":99999999999999999999`, 1) + `]`, `impression 0: field "user_id": want an integer, got number 99999999999999999999 (out of range)`},
		{`[` + strings.Replace(ok, `null`, `[1]`, 1) + `]`, `impression 0: field "channels": element 0: want a string, got number`},
		{`[` + strings.Replace(ok, `{`, `{"features":{},`, 1) + `]`, `impression 0: field "features": want an array of numbers, got object`},
		{`[` + strings.Replace(ok, `0.5`, `"high"`, 1) + `]`, `impression 0: field "score": want a number, got string`},
		{`[` + strings.Replace(ok, `"2026-11-23T18:00:00Z"`, `"yesterday"`, 1) + `]`, `impression 0: field "shown_at": "yesterday" is not an RFC 3339 time like 2026-11-23T18:00:00.123Z`},
		{`[` + strings.Replace(ok, `"2026-11-23T18:00:00Z"`, `5`, 1) + `]`, `impression 0: field "shown_at": want a string, got number`},
		// JSON syntax.
		{`[` + ok + `,]`, "impression 1: malformed JSON at byte 158: invalid character ']' looking for beginning of value"},
		{`[` + ok + ` ` + ok + `]`, "impressions: after impression 0: malformed JSON at byte 158: invalid character '{' after array element"},
		{`[` + ok, "impressions: after impression 0: empty or truncated message"},
		{`[{"request_id":`, "impression 0: empty or truncated message"},
		{`[{"request_id":x}]`, "impression 0: malformed JSON at byte 16: invalid character 'x' looking for beginning of value"},
		{`[` + strings.Replace(ok, `null`, `["mf",`, 1), "impression 0: malformed JSON at byte 104: invalid character ',' looking for beginning of value"},
		{`[` + ok + `]x`, "impressions: trailing data after the JSON array"},
		{`[` + ok + `][` + ok + `]`, "impressions: trailing data after the JSON array"},
		{`[` + strings.Replace(ok, `0.5`, `0.5.5`, 1) + `]`, "impression 0: malformed JSON at byte 88: invalid character ',' in numeric literal"},
	} {
		imps, err := events.DecodeImpressions([]byte(tc.in))
		if lr.ErrorCode(err) != lr.EINVALID || lr.ErrorMessage(err) != tc.want {
			t.Errorf("%q: got %v, %v; want an invalid error %q", tc.in, imps, err, tc.want)
		}
		if imps != nil {
			t.Errorf("%q: a refused message returned impressions %v", tc.in, imps)
		}
		if err != nil && goTypeName.MatchString(err.Error()) {
			t.Errorf("%q: error %q names a Go type", tc.in, err)
		}
	}
}

// hasDuplicateKey reports whether an object of the JSON text b has a key
// twice (which the reader refuses and JSON Schema cannot see).
func hasDuplicateKey(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		keys  map[string]bool // nil for an array
		inKey bool            // an object's next token is a key
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			top := &stack[n-1]
			if top.inKey {
				if k, ok := tok.(string); ok {
					if top.keys[k] {
						return true
					}
					top.keys[k] = true
					top.inKey = false
					continue
				}
			} else {
				top.inKey = true
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{keys: map[string]bool{}, inKey: true})
		case json.Delim('['):
			stack = append(stack, level{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].keys != nil {
				stack[n-1].inKey = true
			}
		}
	}
}

// FuzzDecodeImpressions: any message either decodes to impressions that
// survive an encode/decode round trip, or is refused with an EINVALID
// error — never a panic; and the schema gives the same verdict (but on a
// field given twice, which only the reader refuses).
func FuzzDecodeImpressions(f *testing.F) {
	const ok = `{"request_id":"r","user_id":1,"streamer_id":2,"stream_id":3,"position":0,"score":0.5,"channels":["mf"],"model_versions":"mf=v1","shown_at":"2026-11-23T18:00:00.5+02:00","features":[0.1,2]}`
	for _, s := range []string{
		ok, `[` + ok + `]`, `[` + ok + `,` + ok + `]`, `[]`, `[null]`, `null`, ``, `[`, `[` + ok + `,]`,
		`[{"request_id":"\u00e9\ud800","user_id":9223372036854775807,"streamer_id":1,"stream_id":0,"position":0,"score":-0,"channels":[],"model_versions":"","shown_at":"0000-01-01T00:00:00+01:00"}]`,
		`[{"request_id":"r","user_id":1e0,"streamer_id":2.0,"stream_id":3,"position":0,"score":1e308,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z","features":[1e-45,3.4028235e38]}]`,
	} {
		f.Add([]byte(s))
	}
	s := compileSchema(f, "impression.schema.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		imps, err := events.DecodeImpressions(b)
		if v, jerr := jsonschema.UnmarshalJSON(bytes.NewReader(b)); jerr != nil {
			if err == nil {
				t.Fatalf("%q is not JSON, the reader accepts it", b)
			}
		} else if serr := s.Validate(v); (serr == nil) != (err == nil) && !hasDuplicateKey(b) {
			t.Fatalf("%q:\n schema: %v\n reader: %v", b, serr, err)
		}
		if err != nil {
			if lr.ErrorCode(err) != lr.EINVALID || imps != nil {
				t.Fatalf("%q: %v, %v; want nothing and an invalid error", b, imps, err)
			}
			return
		}
		if len(imps) == 0 {
			t.Fatalf("%q decoded to no impressions and no error", b)
		}
		enc, err := events.EncodeImpressions(imps)
		if err != nil {
			t.Fatalf("%q decoded to %+v that does not encode: %v", b, imps, err)
		}
		again, err := events.DecodeImpressions(enc)
		if err != nil {
			t.Fatalf("%q: re-encoded %s does not decode: %v", b, enc, err)
		}
		if !samePage(again, imps) {
			t.Fatalf("%q: round trip changed %+v into %+v", b, imps, again)
		}
	})
}

// BenchmarkImpressionPage: the cost of one 20-item page's message value,
// encoded by EncodeImpressions and, for comparison, by encoding/json one
// message per item (the format before pages) and as one slice.
func BenchmarkImpressionPage(b *testing.B) {
	imps := page("0195f0c2-8d7e-7c1a-9b1e-3f6a2d4c5e6f", 123456789, 1000, 20, time.Now())
	for i := range imps {
		imps[i].Features = make([]float32, 18)
		for j := range imps[i].Features {
			imps[i].Features[j] = float32(j) / 7
		}
	}
	b.Run("EncodeImpressions", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.EncodeImpressions(imps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal per item", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range imps {
				if _, err := json.Marshal(imps[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("json.Marshal page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(imps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeImpressions", func(b *testing.B) {
		msg, _ := events.EncodeImpressions(imps)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.DecodeImpressions(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
