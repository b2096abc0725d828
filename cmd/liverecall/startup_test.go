package main

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The Kubernetes startup probe is on /readyz because /readyz answers 200
// only once an index is loaded, while /healthz answers 200 at once (see
// checkServerContainer): a replica with no index (here: no active model
// yet) is alive but not started; once a model is active it becomes ready.
func TestReadyzWaitsForTheIndex(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	e := &e2e{t: t, db: db, kafka: k, done: make(chan error, 1)}

	app, _, _ := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	cfg, err := parseServiceFlags(app, "serve", []string{"--database-url", url, "--http-addr", "127.0.0.1:0",
		"--kafka-brokers", k.Brokers()[0], "--shutdown-timeout", "10s", "--index-check-every", "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	e.stopWithin = stopWithin(cfg.shutdownTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	svc, err := newService(ctx, app, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() { e.done <- svc.run(ctx, addrc) }()
	e.addr = <-addrc
	t.Cleanup(e.stop)

	if code, body := e.get("/healthz", false); code != 200 {
		t.Fatalf("/healthz without an index: %d %s", code, body)
	}
	// Not ready for want of the index, whatever the live view does meanwhile.
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	e.waitFor("/readyz to report only the missing index", eventually, func() bool {
		code, b := e.get("/readyz", false)
		if code == 200 {
			t.Fatalf("/readyz answers 200 without an index: %s", b)
		}
		body.Checks = nil
		return json.Unmarshal(b, &body) == nil && code == 503 && len(body.Checks) == 1 && body.Checks["index"] != ""
	})
	e.publishModel("v1", 1)
	e.waitFor("ready once the model is active", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
}
