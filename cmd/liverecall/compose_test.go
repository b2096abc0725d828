package main

import (
	"context"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/liverecall/liverecall/postgres/pgtest"
)

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	PullPolicy  string            `yaml:"pull_policy"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return cf
}

// liverecallArgs returns the liverecall invocations of svc: its command,
// or those in its shell script (entrypoint sh -c).
func liverecallArgs(svc composeService) [][]string {
	if len(svc.Entrypoint) == 0 {
		return [][]string{svc.Command}
	}
	var out [][]string
	redirect := regexp.MustCompile(`[0-9]*[<>]+&?\s*[^\s;&|]+`)
	for _, script := range svc.Command {
		script = redirect.ReplaceAllString(script, "")
		for _, m := range regexp.MustCompile(`(?m)\bliverecall ([^;&|\n]*)`).FindAllStringSubmatch(script, -1) {
			out = append(out, strings.Fields(m[1]))
		}
	}
	return out
}

// Docker cannot run on the build machine, so the compose file is checked
// against the binary: its services exist, run real subcommands, set only
// environment variables the binary reads, and agree on ports; the image is
// built once; Kafka and PostgreSQL are reachable from the host without
// clashing with a local PostgreSQL; data survives a restart.
func TestComposeFileAgreesWithTheBinary(t *testing.T) {
	cf := loadCompose(t)
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Env] = true
	}
	for _, name := range []string{"postgres", "kafka", "kafka-init", "migrate", "seed", "train-mf", "train-ncf", "liverecall", "sink", "simulate"} {
		if _, ok := cf.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	for _, name := range []string{"postgres", "kafka", "liverecall", "sink"} {
		if cf.Services[name].Healthcheck == nil || len(cf.Services[name].Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}

	// One image, built once: exactly one service builds it; every other
	// liverecall service runs it by name and never pulls it.
	var builders []string
	for name, svc := range cf.Services {
		if svc.Build != nil {
			builders = append(builders, name)
		}
	}
	if len(builders) != 1 {
		t.Fatalf("services %v build an image: want exactly one to build the liverecall image", builders)
	}
	image := cf.Services[builders[0]].Image
	if image == "" {
		t.Fatalf("service %s builds without naming the image (image:), so the others cannot run it", builders[0])
	}
	var lrServices []string
	for name, svc := range cf.Services {
		if svc.Image != image {
			continue
		}
		lrServices = append(lrServices, name)
		if svc.Build == nil && svc.PullPolicy != "never" {
			t.Errorf("service %s runs %s with pull_policy %q: want never (the image is built here, not pulled)", name, image, svc.PullPolicy)
		}
	}
	for _, name := range []string{"migrate", "seed", "train-mf", "train-ncf", "liverecall", "sink", "simulate"} {
		if !slices.Contains(lrServices, name) {
			t.Errorf("service %s does not run the built image %s", name, image)
		}
	}

	k := cf.Services["kafka"]
	if !strings.HasPrefix(k.Image, "apache/kafka") || k.Environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] != "1" ||
		k.Environment["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] != "0" || !strings.Contains(k.Environment["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("kafka service is not a single-node KRaft broker: %+v", k)
	}
	pg := cf.Services["postgres"]
	for _, name := range lrServices {
		svc := cf.Services[name]
		for env := range svc.Environment {
			if !known[env] {
				t.Errorf("service %s sets %s, which the binary does not read", name, env)
			}
		}
		if u := svc.Environment["DATABASE_URL"]; !strings.Contains(u, "@postgres:5432/"+pg.Environment["POSTGRES_DB"]) ||
			!strings.Contains(u, pg.Environment["POSTGRES_USER"]+":"+pg.Environment["POSTGRES_PASSWORD"]+"@") {
			t.Errorf("service %s DATABASE_URL %q does not match the postgres service", name, u)
		}
		if svc.DependsOn["postgres"].Condition != "service_healthy" {
			t.Errorf("service %s does not wait for a healthy postgres", name)
		}
		// Every invocation is a subcommand whose flags parse.
		runs := liverecallArgs(svc)
		if len(runs) == 0 {
			t.Errorf("service %s runs no liverecall subcommand", name)
		}
		for _, args := range runs {
			if len(args) == 0 || commands[args[0]] == nil {
				t.Errorf("service %s runs %v, not a liverecall subcommand", name, args)
				continue
			}
			app, _, errb := testApp(nil)
			if code := Run(context.Background(), app, append(slices.Clone(args), "-h")); code != 0 {
				t.Errorf("service %s: %v does not parse: %s", name, args, errb)
			}
		}
	}
	lr := cf.Services["liverecall"]
	if lr.Command[0] != "serve" || lr.DependsOn["migrate"].Condition != "service_completed_successfully" ||
		lr.DependsOn["train-ncf"].Condition != "service_completed_successfully" {
		t.Errorf("liverecall must serve after migrate and training complete: %+v", lr)
	}
	// The demo chain: history, then both models, then the live world.
	for svc, after := range map[string]string{"seed": "migrate", "train-mf": "seed", "train-ncf": "train-mf", "sink": "migrate"} {
		if cf.Services[svc].DependsOn[after].Condition != "service_completed_successfully" {
			t.Errorf("%s must run after %s completes", svc, after)
		}
	}
	sim := cf.Services["simulate"]
	if !slices.Contains(sim.Command, "--to-kafka") || !slices.Contains(sim.Command, "--live") ||
		sim.Environment["LIVERECALL_KAFKA_BROKERS"] != lr.Environment["LIVERECALL_KAFKA_BROKERS"] ||
		sim.Environment["LIVERECALL_SIM_SEED"] != cf.Services["seed"].Environment["LIVERECALL_SIM_SEED"] {
		t.Errorf("simulate must run the seed's world live into the service's Kafka: %+v", sim)
	}
	// simulate goes on from the start the seed recorded only when the world
	// is the same (seed, streamers, users); else it falls back on --days
	// days before today, a different history from the one seed loaded.
	for _, env := range []string{"LIVERECALL_SIM_SEED", "LIVERECALL_SIM_STREAMERS", "LIVERECALL_SIM_USERS", "LIVERECALL_SIM_DAYS", "LIVERECALL_SIM_START"} {
		if a, b := sim.Environment[env], cf.Services["seed"].Environment[env]; a != b {
			t.Errorf("simulate sets %s=%q, seed %q: they must simulate the same world from the same start", env, a, b)
		}
	}

	// Kafka: services use the in-network listener; the host gets a second
	// one advertised as localhost on the published port.
	brokers := lr.Environment["LIVERECALL_KAFKA_BROKERS"]
	adv := strings.Split(k.Environment["KAFKA_ADVERTISED_LISTENERS"], ",")
	if !strings.HasPrefix(brokers, "kafka:") || !slices.ContainsFunc(adv, func(l string) bool { return strings.HasSuffix(l, "://"+brokers) }) {
		t.Errorf("LIVERECALL_KAFKA_BROKERS %q does not match an advertised listener %v", brokers, adv)
	}
	for _, name := range []string{"sink", "simulate"} {
		if b := cf.Services[name].Environment["LIVERECALL_KAFKA_BROKERS"]; b != brokers {
			t.Errorf("service %s uses brokers %q, the service %q", name, b, brokers)
		}
	}
	var hostPort string
	for _, l := range adv {
		if _, hp, ok := strings.Cut(l, "://localhost:"); ok {
			hostPort = hp
		}
	}
	if hostPort == "" || !slices.Contains(k.Ports, hostPort+":"+hostPort) ||
		!strings.Contains(k.Environment["KAFKA_LISTENERS"], ":"+hostPort) {
		t.Errorf("kafka: no listener advertised as localhost on a published port (advertised %v, listeners %q, ports %v)", adv, k.Environment["KAFKA_LISTENERS"], k.Ports)
	}
	for _, p := range k.Ports {
		if strings.HasSuffix(p, ":9092") {
			t.Errorf("kafka publishes %s: the in-network listener advertises kafka:9092, which the host cannot resolve", p)
		}
	}

	// PostgreSQL: not on the host's 5432, where a local server may run.
	for _, p := range pg.Ports {
		if host, _, _ := strings.Cut(p, ":"); host == "5432" {
			t.Errorf("postgres publishes %s: it clashes with a local PostgreSQL on 5432", p)
		}
	}

	// Data survives a restart: named volumes for what each keeps.
	for svc, path := range map[string]string{"postgres": "/var/lib/postgresql/data", "kafka": k.Environment["KAFKA_LOG_DIRS"],
		"liverecall": lr.Environment["LIVERECALL_INDEX_SNAPSHOT_DIR"]} {
		ok := false
		for _, v := range cf.Services[svc].Volumes {
			vol, mount, _ := strings.Cut(v, ":")
			if _, named := cf.Volumes[vol]; named && path != "" && strings.HasPrefix(mount, path) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("service %s: no named volume at %q (volumes %v): a restart would lose its data", svc, path, cf.Services[svc].Volumes)
		}
	}
	if k.Environment["CLUSTER_ID"] == "" {
		t.Errorf("kafka: no fixed CLUSTER_ID: a restart on the kept log directory needs the same one")
	}

	for name, envAddr := range map[string]string{"liverecall": sHTTPAddr.Env, "sink": sSinkMetrics.Env} {
		svc := cf.Services[name]
		addr := svc.Environment[envAddr]
		if addr == "" && name == "liverecall" {
			addr = sHTTPAddr.Default
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("service %s: %s %q: %v", name, envAddr, addr, err)
			continue
		}
		if len(svc.Ports) == 0 || !strings.HasSuffix(svc.Ports[0], ":"+port) || svc.Healthcheck == nil ||
			!strings.Contains(strings.Join(svc.Healthcheck.Test, " "), "localhost:"+port+"/readyz") {
			t.Errorf("service %s: ports %v / healthcheck %v do not match the listen port %s", name, svc.Ports, svc.Healthcheck, port)
		}
	}
}

// The seed script keeps the history on a restart by recognising
// simulate's refusal to load a second one: the text it greps for must be
// what simulate says.
func TestComposeSeedRecognisesExistingHistory(t *testing.T) {
	seed := loadCompose(t).Services["seed"]
	m := regexp.MustCompile(`grep -q '([^']+)'`).FindStringSubmatch(strings.Join(seed.Command, "\n"))
	if m == nil {
		t.Fatalf("the seed script greps for nothing: %q", seed.Command)
	}
	env := map[string]string{"DATABASE_URL": pgtest.New(t)}
	args := []string{"simulate", "--days", "1", "--streamers", "20", "--users", "100", "--to-postgres"}
	app, _, errb := testApp(env)
	if code := Run(context.Background(), app, args); code != 0 {
		t.Fatalf("first load: %d %s", code, errb)
	}
	app, _, errb = testApp(env)
	if code := Run(context.Background(), app, args); code == 0 || !strings.Contains(errb.String(), m[1]) {
		t.Fatalf("second load: code %d, stderr %q does not contain %q", code, errb, m[1])
	}
}
