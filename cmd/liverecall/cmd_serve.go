package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/postgres"
)

var (
	sHTTPAddr        = defSetting(setting{"http-addr", "LIVERECALL_HTTP_ADDR", ":8080", "address the HTTP API listens on"})
	sShutdownTimeout = defSetting(setting{"shutdown-timeout", "LIVERECALL_SHUTDOWN_TIMEOUT", "15s", "how long shutdown waits for in-flight requests"})
	sMigrate         = defSetting(setting{"migrate", "LIVERECALL_MIGRATE", "false", "apply pending migrations before serving"})
	sMaxBody         = defSetting(setting{"max-body-bytes", "LIVERECALL_MAX_BODY_BYTES", "1048576", "largest request body accepted"})
)

func init() {
	register(&command{name: "serve", summary: "serve the HTTP API", run: runServe})
}

// serveConfig is what serve reads from flags and the environment.
type serveConfig struct {
	databaseURL     string
	httpAddr        string
	shutdownTimeout time.Duration
	migrate         bool
	maxBody         int
}

func runServe(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "serve")
	var c serveConfig
	f.StringVar(&c.databaseURL, sDatabaseURL.Flag, f.value(sDatabaseURL), sDatabaseURL.Usage)
	httpAddr, shutdown, migrate, maxBody := f.String(sHTTPAddr), f.Duration(sShutdownTimeout), f.Bool(sMigrate), f.Int(sMaxBody)
	if err := f.Parse(args); err != nil {
		return err
	}
	c.httpAddr, c.shutdownTimeout, c.migrate, c.maxBody = *httpAddr, *shutdown, *migrate, *maxBody
	return serve(ctx, app, c, nil)
}

// serve runs the service until ctx is cancelled or a part fails. If
// listening is not nil it receives the bound address once the listener is up
// (tests use port 0).
func serve(ctx context.Context, app *App, c serveConfig, listening chan<- string) error {
	if c.migrate {
		st, err := postgres.Migrate(ctx, c.databaseURL, func(seq int32, name string) {
			app.Log.Info("applying migration", "seq", seq, "name", name)
		})
		if err != nil {
			return err
		}
		app.Log.Info("schema current", "version", st.Current)
	}
	db, err := postgres.Open(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := api.New(api.Config{MaxBodyBytes: int64(c.maxBody)}, app.Log, reg, reg)
	srv.AddReadinessCheck("database", func() error {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := db.Pool.Ping(pctx); err != nil {
			return errors.New("database not reachable")
		}
		return nil
	})

	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", c.httpAddr, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	app.Log.Info("serving", "addr", ln.Addr().String())
	if listening != nil {
		listening <- ln.Addr().String()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		app.Log.Info("shutting down", "timeout", c.shutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	return g.Wait()
}
