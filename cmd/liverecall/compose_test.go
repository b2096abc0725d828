package main

import (
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// Docker cannot run on the build machine, so the compose file is checked
// against the binary: its services exist, run real subcommands, set only
// environment variables the binary reads, and agree on ports.
func TestComposeFileAgreesWithTheBinary(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Env] = true
	}
	for _, name := range []string{"postgres", "kafka", "kafka-init", "migrate", "seed", "train-mf", "train-ncf", "liverecall", "simulate"} {
		if _, ok := cf.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	for _, name := range []string{"postgres", "kafka", "liverecall"} {
		if cf.Services[name].Healthcheck == nil || len(cf.Services[name].Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	k := cf.Services["kafka"]
	if !strings.HasPrefix(k.Image, "apache/kafka") || k.Environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] != "1" ||
		k.Environment["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] != "0" || !strings.Contains(k.Environment["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("kafka service is not a single-node KRaft broker: %+v", k)
	}
	pg := cf.Services["postgres"]
	for name, svc := range cf.Services {
		if svc.Build == nil {
			continue
		}
		if len(svc.Command) == 0 || commands[svc.Command[0]] == nil {
			t.Errorf("service %s runs %v, not a liverecall subcommand", name, svc.Command)
		}
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
	}
	lr := cf.Services["liverecall"]
	if lr.Command[0] != "serve" || lr.DependsOn["migrate"].Condition != "service_completed_successfully" ||
		lr.DependsOn["train-ncf"].Condition != "service_completed_successfully" {
		t.Errorf("liverecall must serve after migrate and training complete: %+v", lr)
	}
	// The demo chain: history, then both models, then the live world.
	for svc, after := range map[string]string{"seed": "migrate", "train-mf": "seed", "train-ncf": "train-mf"} {
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
	// Every flag given in a command parses with the subcommand's real flag set.
	for name, svc := range cf.Services {
		if svc.Build == nil {
			continue
		}
		var out, errb strings.Builder
		app := &App{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		if code := Run(context.Background(), app, append(slices.Clone(svc.Command), "-h")); code != 0 {
			t.Errorf("service %s: %v does not parse: %s", name, svc.Command, errb.String())
		}
	}
	if brokers := lr.Environment["LIVERECALL_KAFKA_BROKERS"]; !strings.HasPrefix(brokers, "kafka:") ||
		!strings.Contains(k.Environment["KAFKA_ADVERTISED_LISTENERS"], "//"+brokers) {
		t.Errorf("LIVERECALL_KAFKA_BROKERS %q does not match the broker's advertised listener", brokers)
	}
	addr := lr.Environment["LIVERECALL_HTTP_ADDR"]
	if addr == "" {
		addr = sHTTPAddr.Default
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Ports) == 0 || !strings.HasSuffix(lr.Ports[0], ":"+port) || !strings.Contains(strings.Join(lr.Healthcheck.Test, " "), "localhost:"+port+"/readyz") {
		t.Errorf("ports %v / healthcheck %v do not match the listen port %s", lr.Ports, lr.Healthcheck.Test, port)
	}
}
