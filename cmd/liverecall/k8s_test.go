package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/liverecall/liverecall/api"
)

const (
	k8sDir     = "../../deploy/kubernetes"
	dockerfile = "../../Dockerfile"
	// liverecallImage is the image every container runs (with a pinned tag).
	liverecallImage = "ghcr.io/liverecall/liverecall"
)

// k8sTypes maps a document's apiVersion/kind to the Kubernetes API type it
// is decoded into. A document of a kind not listed here (nor in
// k8sUnchecked) is refused: a typo in apiVersion or kind fails as surely as
// one in a field.
var k8sTypes = map[string]func() any{
	"v1/Namespace":                           func() any { return new(corev1.Namespace) },
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
	"batch/v1/CronJob":                       func() any { return new(batchv1.CronJob) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return new(kustomization) },
}

// k8sUnchecked are the kinds whose documents are accepted without strict
// decoding, each with the reason. Only these: every other unknown kind
// fails.
var k8sUnchecked = map[string]string{
	"monitoring.coreos.com/v1/PrometheusRule": "a prometheus-operator CRD; its Go types are not a dependency, and the rules are checked by the observability tests",
}

// kustomization is the part of kustomize's Kustomization type these
// manifests use (kustomize's own types are not a dependency); decoded
// strictly like the rest, so a field outside it fails and must be added
// here deliberately.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// k8sDoc is one YAML document of a manifest.
type k8sDoc struct {
	file      string
	n         int    // its position in the file, from 1
	key       string // apiVersion/kind
	kind      string
	name      string
	obj       any // a pointer to the k8sTypes type; nil for k8sUnchecked kinds
	unchecked bool
}

func (d k8sDoc) String() string {
	return fmt.Sprintf("%s document %d (%s %s)", d.file, d.n, d.kind, d.name)
}

// decodeK8s splits data into its YAML documents and decodes each strictly
// into its Kubernetes API type: a duplicate key, a field the type does not
// have (names are case-sensitive, as the API server's) or a value of the
// wrong type is an error, as is an unknown apiVersion/kind. Documents
// holding only comments are skipped. Offline: the types are Go code, no
// schema is downloaded.
func decodeK8s(file string, data []byte) ([]k8sDoc, error) {
	var docs []k8sDoc
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %v", file, n, err)
		}
		js, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %v", file, n, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // comments only
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			return nil, fmt.Errorf("%s document %d is not an object: %v", file, n, err)
		}
		d := k8sDoc{file: file, n: n, key: meta.APIVersion + "/" + meta.Kind, kind: meta.Kind, name: meta.Metadata.Name}
		if meta.APIVersion == "" || meta.Kind == "" {
			return nil, fmt.Errorf("%s document %d has no apiVersion or kind", file, n)
		}
		newObj, ok := k8sTypes[d.key]
		if !ok {
			if _, skip := k8sUnchecked[d.key]; !skip {
				return nil, fmt.Errorf("%s: unknown kind %s (apiVersion %s): not one of the Kubernetes API types the test knows", d, meta.Kind, meta.APIVersion)
			}
			d.unchecked = true
			docs = append(docs, d)
			continue
		}
		d.obj = newObj()
		strictErrs, err := kjson.UnmarshalStrict(js, d.obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", d, err)
		}
		if len(strictErrs) > 0 {
			return nil, fmt.Errorf("%s: %v", d, errors.Join(strictErrs...))
		}
		if d.name == "" && d.kind != "Kustomization" {
			return nil, fmt.Errorf("%s has no metadata.name", d)
		}
		docs = append(docs, d)
	}
}

// reporter is the part of *testing.T the manifest checks use, so that a
// test can run them on broken copies and see that they complain.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// workload is one pod template found in the manifests.
type workload struct {
	doc      k8sDoc
	kind     string
	name     string
	replicas int32
	selector map[string]string
	pod      *corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + " " + w.name }

// k8sSet is every decoded document of a directory.
type k8sSet struct {
	docs   []k8sDoc
	wls    []workload
	byKind map[string]map[string]k8sDoc
	files  []string // base names of the *.yaml files
}

func loadK8s(t reporter, dir string) *k8sSet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	s := &k8sSet{byKind: map[string]map[string]k8sDoc{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%v", err)
		}
		s.files = append(s.files, filepath.Base(f))
		docs, err := decodeK8s(filepath.Base(f), b)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for _, d := range docs {
			s.docs = append(s.docs, d)
			if s.byKind[d.kind] == nil {
				s.byKind[d.kind] = map[string]k8sDoc{}
			}
			if _, dup := s.byKind[d.kind][d.name]; dup {
				t.Errorf("%s: two %s named %s", d.file, d.kind, d.name)
			}
			s.byKind[d.kind][d.name] = d
			w := workload{doc: d, kind: d.kind, name: d.name}
			switch o := d.obj.(type) {
			case *appsv1.Deployment:
				w.replicas, w.pod = 1, &o.Spec.Template
				if o.Spec.Replicas != nil {
					w.replicas = *o.Spec.Replicas
				}
				if o.Spec.Selector != nil {
					w.selector = o.Spec.Selector.MatchLabels
				}
			case *batchv1.Job:
				w.pod = &o.Spec.Template
			case *batchv1.CronJob:
				w.pod = &o.Spec.JobTemplate.Spec.Template
			default:
				continue
			}
			s.wls = append(s.wls, w)
		}
	}
	return s
}

// TestKubernetesManifestsAgreeWithTheBinary keeps deploy/kubernetes in step
// with the binary and hardened: every document decodes strictly into its
// API type; every container runs a registered subcommand with flags it
// accepts, sets only environment variables the binary reads, listens where
// its address setting says and is probed on routes that exist; runs as the
// image's numeric non-root user with a read-only root filesystem, no
// capabilities, no privilege escalation and the runtime's seccomp profile;
// runs a pinned image; sets GOMEMLIMIT below its memory limit.
func TestKubernetesManifestsAgreeWithTheBinary(t *testing.T) {
	checkK8s(t, k8sDir, dockerfile)
}

// imageUser returns the numeric user id the Dockerfile's final stage runs
// as.
func imageUser(t reporter, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var user string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "USER") {
			user = f[1]
		} else if len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			user = "" // a new stage starts as root
		}
	}
	uid, err := strconv.ParseInt(strings.SplitN(user, ":", 2)[0], 10, 64)
	if err != nil || uid == 0 {
		t.Errorf("Dockerfile: the final stage's USER is %q: want a numeric non-root uid (Kubernetes cannot check runAsNonRoot against a name)", user)
		return -1
	}
	return uid
}

// envSource is where a container's environment variable comes from.
type envSource struct {
	value string // the literal value, or the ConfigMap's/Secret's
	from  string // "literal", "configMap", "secret", "secretKeyRef", "valueFrom"
	ref   *corev1.EnvVarSource
}

func checkK8s(t reporter, dir, dockerfilePath string) {
	t.Helper()
	s := loadK8s(t, dir)
	uid := imageUser(t, dockerfilePath)

	// kustomization.yaml: one, listing every manifest, pinning the image.
	var kz *kustomization
	for _, d := range s.byKind["Kustomization"] {
		if kz != nil {
			t.Errorf("%s: a second Kustomization", d.file)
		}
		kz = d.obj.(*kustomization)
	}
	if kz == nil {
		t.Fatalf("no kustomization.yaml in %s", dir)
	}
	for _, f := range s.files {
		if f != "kustomization.yaml" && !slices.Contains(kz.Resources, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	for _, l := range kz.Resources {
		if _, err := os.Stat(filepath.Join(dir, l)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", l, err)
		}
	}
	var tag string
	for _, im := range kz.Images {
		if im.Name == liverecallImage {
			tag = im.NewTag
		}
	}
	if !regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$`).MatchString(tag) {
		t.Errorf("kustomization.yaml: images entry for %s has newTag %q: want a release version (pinned, never latest)", liverecallImage, tag)
	}
	wantImage := liverecallImage + ":" + tag

	configMaps := map[string]*corev1.ConfigMap{}
	for name, d := range s.byKind["ConfigMap"] {
		configMaps[name] = d.obj.(*corev1.ConfigMap)
	}
	secrets := map[string]map[string]string{} // name -> key -> value
	for name, d := range s.byKind["Secret"] {
		sec := d.obj.(*corev1.Secret)
		secrets[name] = map[string]string{}
		for k, v := range sec.StringData {
			secrets[name][k] = v
		}
		for k, v := range sec.Data {
			secrets[name][k] = string(v)
		}
	}
	for name, cm := range configMaps {
		if _, ok := cm.Data[sAdminToken.Env]; ok {
			t.Errorf("ConfigMap %s holds %s: the admin token belongs in a Secret", name, sAdminToken.Env)
		}
	}

	// GOMEMLIMIT is read by the Go runtime itself.
	known := map[string]bool{"LIVERECALL_DATABASE_URL": true, "GOMEMLIMIT": true}
	for _, st := range settings {
		known[st.Env] = true
	}
	routes := serverRoutes()

	var servers, sinks []workload
	models := map[string]bool{}
	var migrateJob *batchv1.Job
	var cronJobs []*batchv1.CronJob
	for _, w := range s.wls {
		spec := &w.pod.Spec
		if len(spec.Containers) == 0 {
			t.Errorf("%s has no containers", w)
		}
		if w.kind == "Deployment" && !mapContains(w.pod.Labels, w.selector) {
			t.Errorf("Deployment %s: selector %v does not match the pod labels %v", w.name, w.selector, w.pod.Labels)
		}
		if (w.kind == "Job" || w.kind == "CronJob") && spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("%s: restartPolicy %q", w, spec.RestartPolicy)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false (liverecall does not call the Kubernetes API)", w)
		}
		if len(spec.InitContainers) > 0 || len(spec.EphemeralContainers) > 0 {
			t.Errorf("%s: init or ephemeral containers are not checked here; add them to the test", w)
		}
		for i := range spec.Containers {
			c := &spec.Containers[i]
			where := w.String() + " container " + c.Name
			if c.Image != wantImage {
				t.Errorf("%s: image %q, want %q (the kustomization's pinned tag)", where, c.Image, wantImage)
			}
			checkSecurity(t, where, spec, c, uid)
			if len(c.Command) > 0 {
				t.Errorf("%s overrides the image's entrypoint (command %v); give the subcommand in args", where, c.Command)
			}
			if len(c.Args) == 0 {
				t.Errorf("%s: no args, want a liverecall subcommand", where)
				continue
			}
			cmd := c.Args[0]
			if commands[cmd] == nil {
				t.Errorf("%s runs %q, not a liverecall subcommand", where, cmd)
			} else {
				// The flags parse: "-h" after them exits 0 only if every flag before it is known.
				app, _, errb := testApp(nil)
				if code := Run(context.Background(), app, append(slices.Clone(c.Args), "-h")); code != 0 {
					t.Errorf("%s: liverecall %s does not accept these flags: %s", where, strings.Join(c.Args, " "), errb)
				}
			}
			req, lim := c.Resources.Requests, c.Resources.Limits
			if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
				t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", where, c.Resources)
			}

			env := containerEnv(t, where, c, configMaps, secrets)
			if env["DATABASE_URL"].value == "" {
				t.Errorf("%s: no DATABASE_URL", where)
			}
			for name := range env {
				if !known[name] {
					t.Errorf("%s sets %s, which the binary does not read", where, name)
				}
			}
			if tok, ok := env[sAdminToken.Env]; ok && tok.from != "secretKeyRef" {
				t.Errorf("%s: %s comes from %s; want env valueFrom secretKeyRef", where, sAdminToken.Env, tok.from)
			}
			checkGoMemLimit(t, where, c, env)

			switch cmd {
			case "serve":
				servers = append(servers, w)
				checkServerContainer(t, where, w.pod, c, env, routes)
				if tok := env[sAdminToken.Env]; tok.from != "secretKeyRef" {
					t.Errorf("%s: no %s from a Secret (env valueFrom secretKeyRef): the admin routes would refuse every request", where, sAdminToken.Env)
				}
			case "sink":
				sinks = append(sinks, w)
				checkSinkContainer(t, where, w.pod, c, env)
			case "train":
				cj, ok := w.doc.obj.(*batchv1.CronJob)
				if !ok || len(c.Args) != 3 || c.Args[1] != "--model" {
					t.Errorf("%s: training runs as a CronJob with --model <kind>, got %s %v", where, w.kind, c.Args)
				} else {
					models[c.Args[2]] = true
					cronJobs = append(cronJobs, cj)
				}
			case "migrate":
				if j, ok := w.doc.obj.(*batchv1.Job); ok && slices.Equal(c.Args, []string{"migrate", "up"}) {
					migrateJob = j
				}
			}
		}
	}

	if len(servers) != 1 || servers[0].kind != "Deployment" || servers[0].replicas < 2 {
		t.Fatalf("want one server Deployment of several replicas, got %v", servers)
	}
	srv := servers[0]
	hpas := s.byKind["HorizontalPodAutoscaler"]
	if len(hpas) != 1 {
		t.Errorf("want one HorizontalPodAutoscaler, got %d", len(hpas))
	}
	for _, d := range hpas {
		h := d.obj.(*autoscalingv2.HorizontalPodAutoscaler)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != srv.name || h.Spec.MinReplicas == nil ||
			*h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas <= *h.Spec.MinReplicas {
			t.Errorf("HPA %s: %+v does not scale the server Deployment %s", h.Name, h.Spec, srv.name)
		}
	}
	var svcOK bool
	for _, d := range s.byKind["Service"] {
		svc := d.obj.(*corev1.Service)
		if !mapContains(srv.pod.Labels, svc.Spec.Selector) {
			continue
		}
		svcOK = len(svc.Spec.Ports) > 0
		for _, p := range svc.Spec.Ports {
			if !portMatches(&srv.pod.Spec.Containers[0], p.TargetPort) {
				t.Errorf("Service %s targets port %s, which the server container does not expose", svc.Name, p.TargetPort.String())
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
	checkTrainingSchedules(t, cronJobs)
	if migrateJob == nil {
		t.Errorf("no Job runs migrate up")
	} else {
		// A Job's pod template is immutable: a new release must be a new Job.
		if want := "liverecall-migrate-" + strings.ReplaceAll(tag, ".", "-"); migrateJob.Name != want {
			t.Errorf("Job %s: want the name %s, carrying the release, so that applying a new image creates a new Job instead of being refused", migrateJob.Name, want)
		}
		if migrateJob.Spec.TTLSecondsAfterFinished == nil {
			t.Errorf("Job %s: no ttlSecondsAfterFinished: every release's Job would stay forever", migrateJob.Name)
		}
	}
}

// containerEnv is c's environment: envFrom's ConfigMaps and Secrets, then env.
func containerEnv(t reporter, where string, c *corev1.Container, cms map[string]*corev1.ConfigMap, secrets map[string]map[string]string) map[string]envSource {
	t.Helper()
	env := map[string]envSource{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := cms[ef.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %s is not defined", where, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = envSource{value: v, from: "configMap"}
			}
		case ef.SecretRef != nil:
			sec, ok := secrets[ef.SecretRef.Name]
			if !ok {
				t.Errorf("%s: envFrom Secret %s is not defined", where, ef.SecretRef.Name)
				continue
			}
			for k, v := range sec {
				env[ef.Prefix+k] = envSource{value: v, from: "secret"}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envSource{value: e.Value, from: "literal"}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secrets[ref.Name][ref.Key]
			if !ok {
				t.Errorf("%s: %s from Secret %s key %s, which is not defined", where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = envSource{value: v, from: "secretKeyRef", ref: e.ValueFrom}
		default:
			env[e.Name] = envSource{from: "valueFrom", ref: e.ValueFrom}
		}
	}
	return env
}

// checkSecurity checks the restricted Pod Security Standard on c, taking
// the pod's securityContext where the container's leaves a field unset, and
// that the process can write where it needs to.
func checkSecurity(t reporter, where string, pod *corev1.PodSpec, c *corev1.Container, uid int64) {
	t.Helper()
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		t.Errorf("%s: no securityContext", where)
		csc = &corev1.SecurityContext{}
	}
	nonRoot, user, seccomp := psc.RunAsNonRoot, psc.RunAsUser, psc.SeccompProfile
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if csc.RunAsUser != nil {
		user = csc.RunAsUser
	}
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", where)
	}
	if user == nil || *user == 0 || *user != uid {
		t.Errorf("%s: runAsUser %v, want the image's numeric non-root user %d", where, ptrString(user), uid)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile %+v, want RuntimeDefault", where, seccomp)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want drop ALL and add none", where, csc.Capabilities)
	}
	// With a read-only root, every place the process writes is a volume.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	writable := func(path string) bool {
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if ok && !m.ReadOnly && v.EmptyDir != nil && (path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")) {
				return true
			}
		}
		return false
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("%s mounts volume %s, which the pod does not define", where, m.Name)
		}
	}
	if !writable("/tmp") {
		t.Errorf("%s: /tmp is not a writable emptyDir (the root filesystem is read-only)", where)
	}
	for _, e := range c.Env {
		if e.Name == sSnapshotDir.Env && e.Value != "" && !writable(e.Value) {
			t.Errorf("%s: %s %s is not on a writable emptyDir (the root filesystem is read-only)", where, e.Name, e.Value)
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

// GOMEMLIMIT must be 75-90% of the container's memory limit: the Go
// collector then works harder as the heap nears it instead of the kernel
// killing the container, with room left for what the limit counts and Go
// does not manage. A resourceFieldRef on limits.memory would give the whole
// limit (no headroom), so the value is written out and checked here.
const gomemlimitMin, gomemlimitMax = 0.75, 0.90

func checkGoMemLimit(t reporter, where string, c *corev1.Container, env map[string]envSource) {
	t.Helper()
	limit := c.Resources.Limits.Memory().Value()
	e, ok := env["GOMEMLIMIT"]
	if !ok {
		t.Errorf("%s: no GOMEMLIMIT (want %.0f-%.0f%% of the memory limit)", where, 100*gomemlimitMin, 100*gomemlimitMax)
		return
	}
	if e.from != "literal" {
		t.Errorf("%s: GOMEMLIMIT from %s; want a value in the container's env, derived from its own memory limit", where, e.from)
		return
	}
	v, err := parseBytes(e.value)
	if err != nil || limit == 0 {
		t.Errorf("%s: GOMEMLIMIT %q (%v), memory limit %d", where, e.value, err, limit)
		return
	}
	if r := float64(v) / float64(limit); r < gomemlimitMin || r > gomemlimitMax {
		t.Errorf("%s: GOMEMLIMIT %s is %.0f%% of the memory limit %s, want %.0f-%.0f%%", where, e.value, 100*r,
			c.Resources.Limits.Memory(), 100*gomemlimitMin, 100*gomemlimitMax)
	}
}

func checkServerContainer(t reporter, where string, pod *corev1.PodTemplateSpec, c *corev1.Container, env map[string]envSource, routes func(string) int) {
	t.Helper()
	addr := env[sHTTPAddr.Env].value
	if addr == "" {
		addr = sHTTPAddr.Default
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", where, sHTTPAddr.Env, addr, err)
	}
	if len(c.Ports) != 1 || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Errorf("%s: container ports %+v, the server listens on %s", where, c.Ports, port)
	}
	checkScrapeAnnotations(t, where, pod, port)
	// The startup probe holds liveness and readiness back until it passes:
	// it must wait for the index, which /readyz does (its "index" check;
	// TestReadyzWaitsForTheIndex) and /healthz does not.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"startup", c.StartupProbe, "/readyz"}} {
		checkProbe(t, where, p.name, p.probe, p.path, c, routes)
	}
}

// checkSinkContainer: the sink listens on --sink-metrics-addr, exposes the
// port, is probed there and scraped there.
func checkSinkContainer(t reporter, where string, pod *corev1.PodTemplateSpec, c *corev1.Container, env map[string]envSource) {
	t.Helper()
	addr := env[sSinkMetrics.Env].value
	if addr == "" {
		t.Errorf("%s: no %s: the sink serves no probes or metrics", where, sSinkMetrics.Env)
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: %s %q: %v", where, sSinkMetrics.Env, addr, err)
		return
	}
	if len(c.Ports) != 1 || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Errorf("%s: container ports %+v, the sink serves on %s", where, c.Ports, port)
	}
	checkScrapeAnnotations(t, where, pod, port)
	h := sinkHTTPHandler(prometheus.NewRegistry(), func(context.Context) error { return nil })
	routes := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	checkProbe(t, where, "readiness", c.ReadinessProbe, "/readyz", c, routes)
	checkProbe(t, where, "liveness", c.LivenessProbe, "/healthz", c, routes)
}

func checkProbe(t reporter, where, name string, p *corev1.Probe, path string, c *corev1.Container, routes func(string) int) {
	t.Helper()
	switch {
	case p == nil:
		t.Errorf("%s: no %s probe", where, name)
	case p.HTTPGet == nil:
		t.Errorf("%s: %s probe is not an HTTP GET", where, name)
	case p.HTTPGet.Path != path:
		t.Errorf("%s: %s probe on %s, want %s", where, name, p.HTTPGet.Path, path)
	case routes(p.HTTPGet.Path) != http.StatusOK:
		t.Errorf("%s: %s probe path %s answers %d", where, name, p.HTTPGet.Path, routes(p.HTTPGet.Path))
	case !portMatches(c, p.HTTPGet.Port):
		t.Errorf("%s: %s probe port %s is not the container's port", where, name, p.HTTPGet.Port.String())
	}
}

func checkScrapeAnnotations(t reporter, where string, pod *corev1.PodTemplateSpec, port string) {
	t.Helper()
	a := pod.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v, want prometheus.io/scrape \"true\", port %s, path /metrics", where, a, port)
	}
}

// checkTrainingSchedules: the training CronJobs never overlap themselves
// (concurrencyPolicy Forbid) nor each other: each runs daily at a fixed
// time, and its window, from the schedule to the latest start
// (startingDeadlineSeconds) plus the longest run (activeDeadlineSeconds),
// ends before the next one's begins.
func checkTrainingSchedules(t reporter, cjs []*batchv1.CronJob) {
	t.Helper()
	type window struct {
		name       string
		start, end int // minutes from midnight; end may pass 1440
	}
	var ws []window
	for _, cj := range cjs {
		if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("CronJob %s: concurrencyPolicy %q, want Forbid", cj.Name, cj.Spec.ConcurrencyPolicy)
		}
		f := strings.Fields(cj.Spec.Schedule)
		var m, h int
		var err1, err2 error
		if len(f) == 5 {
			m, err1 = strconv.Atoi(f[0])
			h, err2 = strconv.Atoi(f[1])
		}
		if len(f) != 5 || err1 != nil || err2 != nil || f[2] != "*" || f[3] != "*" || f[4] != "*" {
			t.Errorf("CronJob %s: schedule %q is not daily at a fixed time (M H * * *): cannot check that it does not overlap", cj.Name, cj.Spec.Schedule)
			continue
		}
		sd, ad := cj.Spec.StartingDeadlineSeconds, cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds
		if sd == nil || ad == nil {
			t.Errorf("CronJob %s: want startingDeadlineSeconds and activeDeadlineSeconds, which bound when a run ends", cj.Name)
			continue
		}
		start := h*60 + m
		ws = append(ws, window{cj.Name, start, start + int((*sd+*ad+59)/60)})
	}
	for i, a := range ws {
		for _, b := range ws[i+1:] {
			// On a 24 h circle: b starts inside a's window or a inside b's.
			in := func(x, w window) bool { return (x.start-w.start+1440)%1440 < w.end-w.start }
			if in(a, b) || in(b, a) {
				t.Errorf("CronJobs %s (%02d:%02d, may run until %02d:%02d) and %s (%02d:%02d, until %02d:%02d) can run at the same time",
					a.name, a.start/60, a.start%60, a.end/60%24, a.end%60, b.name, b.start/60, b.start%60, b.end/60%24, b.end%60)
			}
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

func portMatches(c *corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && p.StrVal == cp.Name) || (p.Type == intstr.Int && p.IntVal == cp.ContainerPort) {
			return true
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

// The decoder refuses what the API server would: unknown fields (at any
// depth, names case-sensitive), values of the wrong type, duplicate keys,
// unknown kinds; it skips only the kinds k8sUnchecked names.
func TestKubernetesDecoderIsStrict(t *testing.T) {
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i:1
          resources: {limits: {memory: 1Gi}}
`
	if docs, err := decodeK8s("ok.yaml", []byte("# a comment\n---\n"+deployment)); err != nil || len(docs) != 1 ||
		*docs[0].obj.(*appsv1.Deployment).Spec.Replicas != 2 {
		t.Fatalf("a valid Deployment: %v %+v", err, docs)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", "  replicas: 2\n", "  replicas: 2\n  replica: 3\n", `unknown field "spec.replica"`},
		{"unknown nested field", "          image: i:1\n", "          image: i:1\n          imagePullPolicyy: Always\n", `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`},
		{"field in the wrong case", "  replicas: 2\n", "  Replicas: 2\n", `unknown field "spec.Replicas"`},
		{"wrong type", "replicas: 2", `replicas: "two"`, "cannot unmarshal string"},
		{"wrong type in a list", "      containers:\n", "      containers:\n        - 42\n", "cannot unmarshal number"},
		{"bad quantity", "memory: 1Gi", "memory: lots", "quantities must match"},
		{"duplicate key", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", `key "replicas" already set`},
		{"unknown kind", "kind: Deployment", "kind: Deploymnt", "unknown kind Deploymnt"},
		{"wrong apiVersion", "apiVersion: apps/v1", "apiVersion: apps/v1beta9", "unknown kind Deployment (apiVersion apps/v1beta9)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(deployment, tc.old) {
				t.Fatalf("%q not in the sample", tc.old)
			}
			_, err := decodeK8s("bad.yaml", []byte(strings.Replace(deployment, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Only the allow-listed CRD is let through unchecked.
	rule := "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec: {anything: 1}\n"
	if docs, err := decodeK8s("rule.yaml", []byte(rule)); err != nil || len(docs) != 1 || !docs[0].unchecked {
		t.Fatalf("PrometheusRule: %v %+v", err, docs)
	}
	if _, err := decodeK8s("mon.yaml", []byte(strings.Replace(rule, "PrometheusRule", "ServiceMonitor", 1))); err == nil {
		t.Fatal("a ServiceMonitor, not allow-listed, was accepted")
	}
}

// The checks fail on manifests that drift from the binary or lose their
// hardening.
func TestKubernetesCheckCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		file, old, new, want string
	}{
		{"server.yaml", "path: /readyz", "path: /ready", "readiness probe on /ready"},
		{"server.yaml", "containerPort: 8080", "containerPort: 9090", "the server listens on 8080"},
		{"config.yaml", `LIVERECALL_HTTP_ADDR: ":8080"`, `LIVERECALL_HTTP_ADDR: ":7070"`, "the server listens on 7070"},
		{"config.yaml", "LIVERECALL_LOG_LEVEL: info", "LIVERECALL_LOG_LEVL: info", "LIVERECALL_LOG_LEVL, which the binary does not read"},
		{"config.yaml", "LIVERECALL_LOG_LEVEL: info", "LIVERECALL_ADMIN_TOKEN: x", "the admin token belongs in a Secret"},
		{"migrate-job.yaml", `args: ["migrate", "up"]`, `args: ["migrat", "up"]`, "not a liverecall subcommand"},
		{"migrate-job.yaml", `args: ["migrate", "up"]`, `args: ["migrate", "up", "--no-such-flag"]`, "does not accept these flags"},
		{"migrate-job.yaml", "name: liverecall-migrate-0-1-0", "name: liverecall-migrate", "carrying the release"},
		{"migrate-job.yaml", "  ttlSecondsAfterFinished: 604800\n", "", "no ttlSecondsAfterFinished"},
		{"migrate-job.yaml", "backoffLimit: 3", "backoffLimit: three", "cannot unmarshal string"},
		{"server.yaml", "name: liverecall\n  minReplicas", "name: other\n  minReplicas", "does not scale the server"},
		{"server.yaml", "targetPort: http", "targetPort: metrics", "does not expose"},
		{"server.yaml", "ghcr.io/liverecall/liverecall:0.1.0", "ghcr.io/liverecall/liverecall:latest", "the kustomization's pinned tag"},
		{"kustomization.yaml", `newTag: "0.1.0"`, `newTag: latest`, "want a release version"},
		{"server.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem is not true"},
		{"server.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation is not false"},
		{"server.yaml", `capabilities: {drop: ["ALL"]}`, `capabilities: {drop: ["NET_RAW"]}`, "want drop ALL"},
		{"server.yaml", "seccompProfile: {type: RuntimeDefault}", "seccompProfile: {type: Unconfined}", "want RuntimeDefault"},
		{"server.yaml", "runAsUser: 65534", "runAsUser: 0", "want the image's numeric non-root user"},
		{"server.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot is not true"},
		{"server.yaml", "mountPath: /var/lib/liverecall/snapshots", "mountPath: /var/lib/other", "is not on a writable emptyDir"},
		{"sink.yaml", "- {name: tmp, mountPath: /tmp}", "- {name: tmp, mountPath: /scratch}", "/tmp is not a writable emptyDir"},
		{"server.yaml", "value: 2560MiB", "value: 3GiB", "GOMEMLIMIT 3GiB is 100% of the memory limit"},
		{"sink.yaml", "value: 820MiB", "value: 400MiB", "GOMEMLIMIT 400MiB is 39%"},
		{"server.yaml", "secretKeyRef: {name: liverecall-admin, key: token}", "secretKeyRef: {name: liverecall-admin, key: tokn}", "which is not defined"},
		{"server.yaml", "              valueFrom:\n                secretKeyRef: {name: liverecall-admin, key: token}", "              value: demo", "LIVERECALL_ADMIN_TOKEN comes from literal"},
		{"server.yaml", "httpGet: {path: /readyz, port: http}\n            periodSeconds: 5\n            timeoutSeconds: 2\n            failureThreshold: 120",
			"httpGet: {path: /healthz, port: http}\n            periodSeconds: 5\n            timeoutSeconds: 2\n            failureThreshold: 120", "startup probe on /healthz, want /readyz"},
		{"server.yaml", `prometheus.io/port: "8080"`, `prometheus.io/port: "9090"`, "scrape annotations"},
		{"sink.yaml", `value: ":9090"`, `value: ":9091"`, "the sink serves on 9091"},
		{"sink.yaml", "httpGet: {path: /healthz, port: metrics}", "httpGet: {path: /livez, port: metrics}", "liveness probe on /livez"},
		{"sink.yaml", "image: ghcr.io/liverecall/liverecall:0.1.0", "image: ghcr.io/liverecall/liverecall:0.1.0\n          imagePulPolicy: Always", `unknown field "spec.template.spec.containers[0].imagePulPolicy"`},
		{"train-cronjobs.yaml", `"--model", "ncf"`, `"--model", "mf"`, "for mf and ncf"},
		{"train-cronjobs.yaml", `schedule: "0 4 * * *"`, `schedule: "0 3 * * *"`, "can run at the same time"},
		{"train-cronjobs.yaml", `schedule: "0 4 * * *"`, `schedule: "0 */4 * * *"`, "not daily at a fixed time"},
		{"train-cronjobs.yaml", "concurrencyPolicy: Forbid", "concurrencyPolicy: Allow", "want Forbid"},
		{"kustomization.yaml", "  - sink.yaml\n", "", "does not list sink.yaml"},
		{"namespace.yaml", "kind: Namespace", "kind: Namespac", "unknown kind Namespac"},
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
					if !bytes.Contains(b, []byte(tc.old)) {
						t.Fatalf("%s does not contain %q", tc.file, tc.old)
					}
					b = bytes.Replace(b, []byte(tc.old), []byte(tc.new), 1)
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
				checkK8s(r, dir, dockerfile)
			}()
			if !slices.ContainsFunc(r.errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Fatalf("want an error containing %q, got %q", tc.want, r.errs)
			}
		})
	}
}

// The image must run as a numeric non-root user for runAsNonRoot.
func TestKubernetesCheckWantsANumericImageUser(t *testing.T) {
	for _, user := range []string{"nobody", "0", ""} {
		b, err := os.ReadFile(dockerfile)
		if err != nil {
			t.Fatal(err)
		}
		df := regexp.MustCompile(`(?m)^USER .*$`).ReplaceAllString(string(b), "USER "+user)
		p := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(p, []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		imageUser(r, p)
		if len(r.errs) == 0 || !strings.Contains(r.errs[0], "numeric non-root uid") {
			t.Errorf("USER %q: %q", user, r.errs)
		}
	}
}
