package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// setting is one configuration value: a flag, the environment variable that
// sets its default, the built-in default, and what it does. Settings are
// listed in one table (settings) so the README, the compose file and the
// Kubernetes manifests can be checked against it by tests.
type setting struct {
	Flag    string
	Env     string
	Default string
	Usage   string
}

// settings is every configuration value of every subcommand.
var settings = map[string]setting{}

func defSetting(s setting) setting {
	if _, dup := settings[s.Flag]; dup {
		panic("duplicate setting " + s.Flag)
	}
	settings[s.Flag] = s
	return s
}

// Common settings.
var (
	sDatabaseURL = defSetting(setting{"database-url", "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/liverecall?sslmode=disable", "PostgreSQL connection URL (LIVERECALL_DATABASE_URL is read too)"})
	sLogLevel    = defSetting(setting{"log-level", "LIVERECALL_LOG_LEVEL", "info", "log level: debug, info, warn, error"})
	sLogFormat   = defSetting(setting{"log-format", "LIVERECALL_LOG_FORMAT", "json", "log format: json or text"})
	// sKafkaBrokers is shared by serve, sink and dev: a comma-separated
	// bootstrap list. Empty means no broker (dev then starts an in-process one).
	sKafkaBrokers = defSetting(setting{"kafka-brokers", "LIVERECALL_KAFKA_BROKERS", "", "comma-separated Kafka bootstrap brokers, e.g. kafka:9092"})
)

// flags is a flag set whose defaults come from the environment.
type flags struct {
	*flag.FlagSet
	app *App
	err error
}

func newFlags(app *App, name string) *flags {
	fs := flag.NewFlagSet("liverecall "+name, flag.ContinueOnError)
	fs.SetOutput(app.Stderr)
	return &flags{FlagSet: fs, app: app}
}

// value returns the default of s after the environment: the environment
// variable, then (for the database URL) LIVERECALL_DATABASE_URL, then the
// built-in default.
func (f *flags) value(s setting) string {
	if v := f.app.Getenv(s.Env); v != "" {
		return v
	}
	if s.Env == "DATABASE_URL" {
		if v := f.app.Getenv("LIVERECALL_DATABASE_URL"); v != "" {
			return v
		}
	}
	return s.Default
}

func (f *flags) String(s setting) *string {
	return f.FlagSet.String(s.Flag, f.value(s), s.Usage+" [$"+s.Env+"]")
}

func (f *flags) Int(s setting) *int {
	v, err := strconv.Atoi(f.value(s))
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not an integer", s.Env, f.value(s))
	}
	return f.FlagSet.Int(s.Flag, v, s.Usage+" [$"+s.Env+"]")
}

func (f *flags) Float(s setting) *float64 {
	v, err := strconv.ParseFloat(f.value(s), 64)
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not a number", s.Env, f.value(s))
	}
	return f.FlagSet.Float64(s.Flag, v, s.Usage+" [$"+s.Env+"]")
}

func (f *flags) Bool(s setting) *bool {
	v, err := strconv.ParseBool(f.value(s))
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not a boolean", s.Env, f.value(s))
	}
	return f.FlagSet.Bool(s.Flag, v, s.Usage+" [$"+s.Env+"]")
}

func (f *flags) Duration(s setting) *time.Duration {
	v, err := time.ParseDuration(f.value(s))
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not a duration (e.g. 30s, 5m)", s.Env, f.value(s))
	}
	return f.FlagSet.Duration(s.Flag, v, s.Usage+" [$"+s.Env+"]")
}

// Parse parses args; a bad environment value or flag is a usage error.
func (f *flags) Parse(args []string) error {
	if f.err != nil {
		fmt.Fprintf(f.app.Stderr, "liverecall: %v\n", f.err)
		return errUsage
	}
	if err := f.FlagSet.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	return nil
}

// Bytes reads a size: a number of bytes, or one with a KiB, MiB or GiB
// suffix (e.g. 256MiB).
func (f *flags) Bytes(s setting) *int64 {
	v, err := parseBytes(f.value(s))
	if err != nil {
		f.err = fmt.Errorf("$%s: %v", s.Env, err)
	}
	p := new(int64)
	*p = v
	f.FlagSet.Func(s.Flag, s.Usage+" (bytes, or with a KiB, MiB or GiB suffix) [$"+s.Env+"] (default "+s.Default+")", func(arg string) error {
		n, err := parseBytes(arg)
		if err == nil {
			*p = n
		}
		return err
	})
	return p
}

func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 268435456 or 256MiB)", v)
	}
	return n * mult, nil
}
