package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/liverecall/liverecall/api"
)

const k8sDir = "../../deploy/kubernetes"

// reporter is the part of *testing.T the manifest checks use, so that a
// test can run them on broken copies and see that they complain.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// expectedLater are subcommands the manifests run that are not built yet,
// with the environment variables they will read. While a command is not
// registered its manifest is checked for shape only; once it is registered
// (its cmd_*.go file lands), it is checked like every other command: its
// flags must parse and its environment variables must be known settings.
var expectedLater = map[string][]string{
	"sink":  {"LIVERECALL_SINK_GROUP"},
	"train": nil,
}

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Resources  []string          `yaml:"resources"` // Kustomization
	Spec       yaml.Node         `yaml:"spec"`
	file       string
}

type k8sPodSpec struct {
	RestartPolicy                 string         `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	Containers                    []k8sContainer `yaml:"containers"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec k8sPodSpec `yaml:"spec"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

// workload is one pod template found in the manifests.
type workload struct {
	kind, name string
	replicas   int
	selector   map[string]string
	pod        k8sPodTemplate
}

func loadK8s(t reporter, dir string) ([]k8sObject, []workload) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	var objs []k8sObject
	var wls []workload
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%v", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 1; ; i++ {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(f), i, err)
			}
			if o.Kind == "" {
				t.Fatalf("%s document %d has no kind", filepath.Base(f), i)
			}
			o.file = filepath.Base(f)
			objs = append(objs, o)
			w := workload{kind: o.Kind, name: o.Metadata.Name}
			var err2 error
			switch o.Kind {
			case "Deployment":
				var s struct {
					Replicas int `yaml:"replicas"`
					Selector struct {
						MatchLabels map[string]string `yaml:"matchLabels"`
					} `yaml:"selector"`
					Template k8sPodTemplate `yaml:"template"`
				}
				err2 = o.Spec.Decode(&s)
				w.replicas, w.selector, w.pod = s.Replicas, s.Selector.MatchLabels, s.Template
			case "Job":
				var s struct {
					Template k8sPodTemplate `yaml:"template"`
				}
				err2 = o.Spec.Decode(&s)
				w.pod = s.Template
			case "CronJob":
				var s struct {
					Schedule    string `yaml:"schedule"`
					JobTemplate struct {
						Spec struct {
							Template k8sPodTemplate `yaml:"template"`
						} `yaml:"spec"`
					} `yaml:"jobTemplate"`
				}
				err2 = o.Spec.Decode(&s)
				if s.Schedule == "" {
					t.Errorf("%s: CronJob %s has no schedule", o.file, o.Metadata.Name)
				}
				w.pod = s.JobTemplate.Spec.Template
			default:
				continue
			}
			if err2 != nil {
				t.Fatalf("%s: %s %s: %v", o.file, o.Kind, o.Metadata.Name, err2)
			}
			wls = append(wls, w)
		}
	}
	return objs, wls
}

// TestKubernetesManifestsAgreeWithTheBinary keeps deploy/kubernetes in step
// with the binary: every container runs a registered subcommand with flags
// it accepts, sets only environment variables the binary reads, listens
// where --http-addr says, and is probed on routes the server serves.
func TestKubernetesManifestsAgreeWithTheBinary(t *testing.T) {
	checkK8s(t, k8sDir)
}

func checkK8s(t reporter, dir string) {
	objs, wls := loadK8s(t, dir)
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		if _, dup := byKind[o.Kind][o.Metadata.Name]; dup {
			t.Errorf("%s: two %s named %s", o.file, o.Kind, o.Metadata.Name)
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	// GOMEMLIMIT is read by the Go runtime itself.
	known := map[string]bool{"LIVERECALL_DATABASE_URL": true, "GOMEMLIMIT": true}
	for _, s := range settings {
		known[s.Env] = true
	}
	routes := serverRoutes()

	var servers, sinks []workload
	models := map[string]bool{}
	var migrateJob bool
	for _, w := range wls {
		if len(w.pod.Spec.Containers) == 0 {
			t.Errorf("%s %s has no containers", w.kind, w.name)
		}
		if w.kind == "Deployment" && !mapContains(w.pod.Metadata.Labels, w.selector) {
			t.Errorf("Deployment %s: selector %v does not match the pod labels %v", w.name, w.selector, w.pod.Metadata.Labels)
		}
		if (w.kind == "Job" || w.kind == "CronJob") && w.pod.Spec.RestartPolicy != "Never" && w.pod.Spec.RestartPolicy != "OnFailure" {
			t.Errorf("%s %s: restartPolicy %q", w.kind, w.name, w.pod.Spec.RestartPolicy)
		}
		for _, c := range w.pod.Spec.Containers {
			where := w.kind + " " + w.name + " container " + c.Name
			if len(c.Command) > 0 {
				t.Errorf("%s overrides the image's entrypoint (command %v); give the subcommand in args", where, c.Command)
			}
			if !strings.Contains(c.Image, "liverecall") || len(c.Args) == 0 {
				t.Errorf("%s: image %q args %v, want the liverecall image and a subcommand", where, c.Image, c.Args)
				continue
			}
			cmd := c.Args[0]
			_, later := expectedLater[cmd]
			registered := commands[cmd] != nil
			switch {
			case registered:
				// The flags parse: "-h" after them exits 0 only if every flag before it is known.
				app, _, errb := testApp(nil)
				if code := Run(context.Background(), app, append(slices.Clone(c.Args), "-h")); code != 0 {
					t.Errorf("%s: liverecall %s does not accept these flags: %s", where, strings.Join(c.Args, " "), errb)
				}
			case later:
				t.Logf("%s runs %q, not built yet: checked once it is registered", where, cmd)
			default:
				t.Errorf("%s runs %q, not a liverecall subcommand", where, cmd)
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", where, c.Resources)
			}

			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					cm, ok := byKind["ConfigMap"][ef.ConfigMapRef.Name]
					if !ok {
						t.Errorf("%s: envFrom ConfigMap %s is not defined", where, ef.ConfigMapRef.Name)
					}
					for k, v := range cm.Data {
						env[k] = v
					}
				case ef.SecretRef != nil:
					s, ok := byKind["Secret"][ef.SecretRef.Name]
					if !ok {
						t.Errorf("%s: envFrom Secret %s is not defined", where, ef.SecretRef.Name)
					}
					for k, v := range s.StringData {
						env[k] = v
					}
				}
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if env["DATABASE_URL"] == "" {
				t.Errorf("%s: no DATABASE_URL", where)
			}
			for name := range env {
				if known[name] {
					continue
				}
				if !registered && slices.Contains(expectedLater[cmd], name) {
					continue
				}
				t.Errorf("%s sets %s, which the binary does not read", where, name)
			}

			switch cmd {
			case "serve":
				servers = append(servers, w)
				checkServerContainer(t, where, c, env, routes)
			case "sink":
				sinks = append(sinks, w)
				if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
					t.Errorf("%s: the sink serves no HTTP probes", where)
				}
			case "train":
				if w.kind != "CronJob" || len(c.Args) != 3 || c.Args[1] != "--model" {
					t.Errorf("%s: training runs as a CronJob with --model <kind>, got %s %v", where, w.kind, c.Args)
				} else {
					models[c.Args[2]] = true
				}
			case "migrate":
				migrateJob = migrateJob || (w.kind == "Job" && slices.Equal(c.Args, []string{"migrate", "up"}))
			}
		}
	}

	if len(servers) != 1 || servers[0].kind != "Deployment" || servers[0].replicas < 2 {
		t.Fatalf("want one server Deployment of several replicas, got %+v", servers)
	}
	srv := servers[0]
	hpa, ok := byKind["HorizontalPodAutoscaler"]
	if !ok || len(hpa) != 1 {
		t.Errorf("want one HorizontalPodAutoscaler, got %d", len(hpa))
	}
	for _, h := range hpa {
		var s struct {
			ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
			MinReplicas    int                         `yaml:"minReplicas"`
			MaxReplicas    int                         `yaml:"maxReplicas"`
		}
		if err := h.Spec.Decode(&s); err != nil {
			t.Fatalf("%v", err)
		}
		if s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != srv.name || s.MinReplicas < 2 || s.MaxReplicas <= s.MinReplicas {
			t.Errorf("HPA %s: %+v does not scale the server Deployment %s", h.Metadata.Name, s, srv.name)
		}
	}
	var svcOK bool
	for _, svc := range byKind["Service"] {
		var s struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		}
		if err := svc.Spec.Decode(&s); err != nil {
			t.Fatalf("%v", err)
		}
		if !mapContains(srv.pod.Metadata.Labels, s.Selector) {
			continue
		}
		svcOK = len(s.Ports) > 0
		for _, p := range s.Ports {
			if !portMatches(srv.pod.Spec.Containers[0], p.TargetPort) {
				t.Errorf("Service %s targets port %v, which the server container does not expose", svc.Metadata.Name, p.TargetPort)
			}
		}
	}
	if !svcOK {
		t.Errorf("no Service selects the server pods")
	}
	if len(sinks) != 1 || sinks[0].kind != "Deployment" {
		t.Errorf("want the sink as one Deployment (one consumer group), got %d", len(sinks))
	}
	if !models["mf"] || !models["ncf"] {
		t.Errorf("want nightly training CronJobs for mf and ncf, got %v", models)
	}
	if !migrateJob {
		t.Errorf("no Job runs migrate up")
	}

	// kustomization.yaml lists every manifest.
	var listed []string
	for _, o := range byKind["Kustomization"] {
		listed = append(listed, o.Resources...)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(listed, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
	for _, l := range listed {
		if _, err := os.Stat(filepath.Join(dir, l)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", l, err)
		}
	}
}

func checkServerContainer(t reporter, where string, c k8sContainer, env map[string]string, routes func(string) int) {
	t.Helper()
	addr := env[sHTTPAddr.Env]
	if addr == "" {
		addr = sHTTPAddr.Default
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", where, sHTTPAddr.Env, addr, err)
	}
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("%s: container ports %+v, the server listens on %s", where, c.Ports, port)
	}
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"startup", c.StartupProbe, ""}} {
		if p.probe == nil {
			if p.path != "" {
				t.Errorf("%s: no %s probe", where, p.name)
			}
			continue
		}
		if p.probe.HTTPGet == nil {
			t.Errorf("%s: %s probe is not an HTTP GET", where, p.name)
			continue
		}
		if p.path != "" && p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: %s probe on %s, want %s", where, p.name, p.probe.HTTPGet.Path, p.path)
		}
		if code := routes(p.probe.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("%s: %s probe path %s answers %d on the server", where, p.name, p.probe.HTTPGet.Path, code)
		}
		if !portMatches(c, p.probe.HTTPGet.Port) {
			t.Errorf("%s: %s probe port %v is not the container's port", where, p.name, p.probe.HTTPGet.Port)
		}
	}
}

// serverRoutes returns the status the real API handler gives GET path.
func serverRoutes() func(string) int {
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	return func(path string) int {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
}

func portMatches(c k8sContainer, p any) bool {
	for _, cp := range c.Ports {
		switch v := p.(type) {
		case string:
			if v == cp.Name {
				return true
			}
		case int:
			if v == cp.ContainerPort {
				return true
			}
		}
	}
	return false
}

func mapContains(m, sub map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if m[k] != v {
			return false
		}
	}
	return true
}

// recorder collects what the checks report.
type recorder struct{ errs []string }

type fatal struct{}

func (r *recorder) Helper()                      {}
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }
func (r *recorder) Fatalf(f string, args ...any) {
	r.Errorf(f, args...)
	panic(fatal{})
}

// The checks fail on manifests that drift from the binary.
func TestKubernetesCheckCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		file, old, new, want string
	}{
		{"server.yaml", "path: /readyz", "path: /ready", "readiness probe"},
		{"server.yaml", "containerPort: 8080", "containerPort: 9090", "the server listens on 8080"},
		{"config.yaml", `LIVERECALL_HTTP_ADDR: ":8080"`, `LIVERECALL_HTTP_ADDR: ":7070"`, "the server listens on 7070"},
		{"config.yaml", "LIVERECALL_LOG_LEVEL: info", "LIVERECALL_LOG_LEVL: info", "LIVERECALL_LOG_LEVL, which the binary does not read"},
		{"migrate-job.yaml", `args: ["migrate", "up"]`, `args: ["migrat", "up"]`, "not a liverecall subcommand"},
		{"migrate-job.yaml", `args: ["migrate", "up"]`, `args: ["migrate", "up", "--no-such-flag"]`, "does not accept these flags"},
		{"server.yaml", "name: liverecall\n  minReplicas", "name: other\n  minReplicas", "does not scale the server"},
		{"server.yaml", "targetPort: http", "targetPort: metrics", "does not expose"},
		{"train-cronjobs.yaml", `"--model", "ncf"`, `"--model", "mf"`, "for mf and ncf"},
		{"kustomization.yaml", "  - sink.yaml\n", "", "does not list sink.yaml"},
	} {
		t.Run(tc.file+"/"+tc.new, func(t *testing.T) {
			dir := t.TempDir()
			files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Base(f) == tc.file {
					old, repl := tc.old, tc.new
					if !bytes.Contains(b, []byte(old)) {
						t.Fatalf("%s does not contain %q", tc.file, old)
					}
					b = bytes.Replace(b, []byte(old), []byte(repl), 1)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := &recorder{}
			func() {
				defer func() {
					if p := recover(); p != nil {
						if _, ok := p.(fatal); !ok {
							panic(p)
						}
					}
				}()
				checkK8s(r, dir)
			}()
			if !slices.ContainsFunc(r.errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Fatalf("want an error containing %q, got %q", tc.want, r.errs)
			}
		})
	}
}
