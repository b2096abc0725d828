package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

var (
	sHTTPAddr        = defSetting(setting{"http-addr", "LIVERECALL_HTTP_ADDR", ":8080", "address the HTTP API listens on"})
	sShutdownTimeout = defSetting(setting{"shutdown-timeout", "LIVERECALL_SHUTDOWN_TIMEOUT", "15s", "how long shutdown waits for in-flight requests"})
	sMigrate         = defSetting(setting{"migrate", "LIVERECALL_MIGRATE", "false", "apply pending migrations before serving"})
	sMaxBody         = defSetting(setting{"max-body-bytes", "LIVERECALL_MAX_BODY_BYTES", "1048576", "largest request body accepted"})
	sPprofAddr       = defSetting(setting{"pprof-addr", "LIVERECALL_PPROF_ADDR", "", "address of a separate listener serving Go's profiles at /debug/pprof/ (no authentication: bind it to localhost or a port only operators reach; empty: none)"})
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
	otlpEndpoint    string
	pprofAddr       string // empty: no profiling listener
}

func runServe(ctx context.Context, app *App, args []string) error {
	cfg, err := parseServiceFlags(app, "serve", args)
	if err != nil {
		return err
	}
	svc, err := newService(ctx, app, cfg)
	if err != nil {
		return err
	}
	return svc.run(ctx, nil)
}

// parseServiceFlags reads the settings of serve (and dev) from args and the environment.
func parseServiceFlags(app *App, name string, args []string) (serviceConfig, error) {
	f := newFlags(app, name)
	consoleEvery := f.Duration(sConsoleSample)
	dbURL, httpAddr, shutdown, migrate, maxBody := f.String(sDatabaseURL), f.String(sHTTPAddr), f.Duration(sShutdownTimeout), f.Bool(sMigrate), f.Int(sMaxBody)
	brokers, topics, dlq, impTopic := f.String(sKafkaBrokers), f.String(sEventsTopic), f.String(sDeadLetterTopic), f.String(sImpressionsTopic)
	shownTopic := f.String(sShownTopic)
	token, debugOpen, lookback, expiry := f.String(sAdminToken), f.Bool(sDebugOpen), f.Duration(sLookback), f.Duration(sExpiry)
	budget, shown, refresh, unknownShare := f.Duration(sRecallBudget), f.Duration(sShownWindow), f.Duration(sRefreshEvery), f.Float(sUnknownShare)
	userIdle, userLoadWait := f.Duration(sUserIdle), f.Duration(sUserLoadWait)
	snapDir, floor, checkEvery, exact, ef := f.String(sSnapshotDir), f.Float(sRecallFloor), f.Duration(sCheckEvery), f.Int(sExactThreshold), f.Int(sEfSearch)
	recallTarget := f.Float(sRecallTarget)
	userCache, otlp, pprofAddr := f.Bytes(sUserCacheBytes), f.String(sOTLPEndpoint), f.String(sPprofAddr)
	foldIn, foldWindow, foldDebounce, foldRate, foldMax := f.Bool(sFoldIn), f.Duration(sFoldInWindow), f.Duration(sFoldInDebounce), f.Float(sFoldInRate), f.Int(sFoldInMaxUsers)
	foldNewUser := f.Duration(sFoldInNewUser)
	expEvery, expWatch, expWithin := f.Duration(sExpReportEvery), f.Int(sExpWatchSeconds), f.Duration(sExpWatchWithin)
	if err := f.Parse(args); err != nil {
		return serviceConfig{}, err
	}
	if *recallTarget < 0 || *recallTarget > 1 || *recallTarget != *recallTarget {
		fmt.Fprintf(app.Stderr, "liverecall: --%s: must be between 0 (off) and 1, got %v\n", sRecallTarget.Flag, *recallTarget)
		return serviceConfig{}, errUsage
	}
	if *consoleEvery <= 0 {
		fmt.Fprintf(app.Stderr, "liverecall: --%s: must be positive\n", sConsoleSample.Flag)
		return serviceConfig{}, errUsage
	}
	if *unknownShare < 0 || *unknownShare > 1 || *unknownShare != *unknownShare {
		fmt.Fprintf(app.Stderr, "liverecall: --%s: must be between 0 and 1, got %v\n", sUnknownShare.Flag, *unknownShare)
		return serviceConfig{}, errUsage
	}
	for _, bad := range []struct {
		s  setting
		ok bool
	}{{sExpReportEvery, *expEvery >= 0}, {sExpWatchSeconds, *expWatch > 0}, {sExpWatchWithin, *expWithin > 0}, {sFoldInWindow, *foldWindow > 0}, {sFoldInNewUser, *foldNewUser > 0}, {sFoldInDebounce, *foldDebounce > 0}, {sFoldInRate, *foldRate > 0 && *foldRate < math.Inf(1)}, {sFoldInMaxUsers, *foldMax > 0}} {
		if !bad.ok {
			fmt.Fprintf(app.Stderr, "liverecall: --%s: must be positive\n", bad.s.Flag)
			return serviceConfig{}, errUsage
		}
	}
	return serviceConfig{
		serveConfig: serveConfig{databaseURL: *dbURL, httpAddr: *httpAddr, shutdownTimeout: *shutdown, migrate: *migrate, maxBody: *maxBody, otlpEndpoint: *otlp, pprofAddr: *pprofAddr},
		brokers:     splitCommaList(*brokers), topics: splitCommaList(*topics), deadLetterTopic: *dlq, impressionsTopic: *impTopic, shownTopic: *shownTopic,
		adminToken: *token, debugOpen: *debugOpen, lookback: *lookback, expiry: *expiry, userIdle: *userIdle, userLoadWait: *userLoadWait,
		recallBudget: *budget, shownWindow: *shown, refreshEvery: *refresh, consoleEvery: *consoleEvery, unknownShare: *unknownShare, userCacheBytes: *userCache,
		index:  indexConfig{snapshotDir: *snapDir, recallFloor: *floor, checkEvery: *checkEvery, exactThreshold: *exact, efSearch: *ef, recallTarget: *recallTarget},
		foldIn: foldInConfig{enabled: *foldIn, window: *foldWindow, newUser: *foldNewUser, debounce: *foldDebounce, rate: *foldRate, maxUsers: *foldMax},

		experimentReports: experimentReportConfig{every: *expEvery, watchSeconds: *expWatch, within: *expWithin},
	}, nil
}

// engineUnknownShare maps the --unknown-share flag (0: none) onto
// recall.Config.UnknownShare (0: the default, negative: none).
func engineUnknownShare(flag float64) float64 {
	if flag == 0 {
		return -1
	}
	return flag
}
