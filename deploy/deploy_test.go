package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/whiskserver/whisk/internal/config"
)

// configPath is where the image (and the Kubernetes ConfigMap) puts
// whisk.toml.
const configPath = "/etc/whisk/whisk.toml"

// loadWhiskConfig loads a whisk.toml with whisk's own loader, as an
// unprivileged user in a container would. The paths it names (chdir,
// python) exist only in the image, so they are checked against the
// Dockerfile separately and stood in for here by WHISK_* variables, which
// override them; everything else is validated as `whisk serve` would.
func loadWhiskConfig(t *testing.T, name string, data []byte) (*config.Config, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "whisk.toml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(dir, "venv")
	if err := os.MkdirAll(filepath.Join(venv, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(venv, "bin", "python"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := config.Load(config.Options{
		File:        file,
		Dir:         dir,
		Environ:     []string{"WHISK_CHDIR=" + dir, "WHISK_PYTHON=" + venv, "WHISK_PROCESSES=2"},
		NumCPU:      2,
		CurrentUser: "whisk",
	})
	if err != nil {
		t.Fatalf("%s: whisk rejects it:\n%v", name, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: warning: %s", name, w)
	}
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	return &res.Config, raw
}

// port returns the port of a HOST:PORT bind.
func port(t *testing.T, bind string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(bind)
	if err != nil {
		t.Fatalf("bind %q: %v", bind, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("bind %q: port %q", bind, p)
	}
	return n
}

// everyAddress reports whether a bind listens on every address (so the
// kubelet or another container reaches it at the pod address).
func everyAddress(bind string) bool {
	host, _, err := net.SplitHostPort(bind)
	return err == nil && (host == "" || host == "0.0.0.0" || host == "::")
}

// --- Dockerfile ---

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	name, image string
	ins         []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			// global build arguments
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0:
			t.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: ends inside a continued instruction", path)
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(t *testing.T, cmd string) instruction {
	t.Helper()
	all := s.all(cmd)
	if len(all) == 0 {
		t.Fatalf("stage %s has no %s", s.name, cmd)
	}
	return all[len(all)-1]
}

// execForm parses an instruction's JSON (exec) form.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form [\"...\"]: %v", in.line, in.cmd, in.args, err)
	}
	return v
}

// TestDockerfile checks what can be checked without building the image:
// the stages, that whisk is built static and copied into a Python runtime
// stage that runs as a non-root numeric user, serves deploy/whisk.toml,
// exposes its ports and stops on SIGTERM.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	var names []string
	for _, s := range stages {
		names = append(names, s.name)
	}
	if !slices.Equal(names, []string{"build", "venv", "runtime"}) {
		t.Fatalf("stages %q, want build, venv, runtime", names)
	}
	build, venv, rt := stages[0], stages[1], stages[2]
	if !strings.HasPrefix(build.image, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.image)
	}
	for _, s := range []stage{venv, rt} {
		if !strings.HasPrefix(s.image, "python:") {
			t.Errorf("stage %s FROM %s, want a python image", s.name, s.image)
		}
	}
	if run := build.last(t, "RUN").args; !strings.Contains(run, "CGO_ENABLED=0") || !strings.Contains(run, "go build") || !strings.Contains(run, "./cmd/whisk") {
		t.Errorf("build stage's last RUN does not build a static ./cmd/whisk: %s", run)
	}

	// The runtime stage takes the binary and the virtualenv from the others.
	var copies []string
	for _, in := range rt.all("COPY") {
		copies = append(copies, in.args)
	}
	for _, want := range []string{"--from=build /out/whisk /usr/local/bin/whisk", "--from=venv /opt/venv /opt/venv", "deploy/whisk.toml " + configPath} {
		if !slices.Contains(copies, want) {
			t.Errorf("runtime stage lacks COPY %s (has %q)", want, copies)
		}
	}

	user := rt.last(t, "USER").args
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("runtime USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot can only check a number)", user)
	}
	for _, in := range rt.ins {
		if in.cmd == "USER" && in.line > rt.last(t, "USER").line {
			t.Errorf("Dockerfile:%d: USER after the last USER", in.line)
		}
		if in.cmd == "RUN" && in.line > rt.last(t, "USER").line {
			t.Errorf("Dockerfile:%d: RUN after USER: the image's files should be set up as root", in.line)
		}
	}

	cmd := append(execForm(t, rt.last(t, "ENTRYPOINT")), execForm(t, rt.last(t, "CMD"))...)
	if want := []string{"/usr/local/bin/whisk", "serve", "--config", configPath}; !slices.Equal(cmd, want) {
		t.Errorf("the image runs %q, want %q", cmd, want)
	}
	if s := rt.last(t, "STOPSIGNAL").args; s != "SIGTERM" {
		t.Errorf("STOPSIGNAL %s, want SIGTERM (whisk's graceful stop)", s)
	}
	if hc := rt.last(t, "HEALTHCHECK").args; !strings.Contains(hc, "/healthz") {
		t.Errorf("HEALTHCHECK does not probe /healthz: %s", hc)
	}

	// The image's whisk.toml listens where the image says it does.
	data, err := os.ReadFile("whisk.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, raw := loadWhiskConfig(t, "deploy/whisk.toml", data)
	exposed := strings.Fields(rt.last(t, "EXPOSE").args)
	for _, b := range append(slices.Clone(cfg.Server.Bind), cfg.Server.HealthBind) {
		if !everyAddress(b) {
			t.Errorf("deploy/whisk.toml: %s is not reachable from outside the container", b)
		}
		if !slices.Contains(exposed, strconv.Itoa(port(t, b))) {
			t.Errorf("EXPOSE %v lacks the port of %s", exposed, b)
		}
	}
	if workdir := rt.last(t, "WORKDIR").args; raw["chdir"] != workdir {
		t.Errorf("deploy/whisk.toml: chdir = %v, want the image's app directory %s", raw["chdir"], workdir)
	}
	if raw["python"] != "/opt/venv" {
		t.Errorf("deploy/whisk.toml: python = %v, want the image's virtualenv /opt/venv", raw["python"])
	}
	if cfg.Server.ShutdownDelay <= 0 {
		t.Error("deploy/whisk.toml: no shutdown_delay: load balancers would still send to a stopping container")
	}
}

// --- systemd ---

// unit is a parsed unit file: section → key → values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: a setting outside a section", path, n+1)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: want KEY=VALUE: %q", path, n+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnits checks the service and socket pair: socket activation,
// Type=notify, reload by SIGHUP, a stop that leaves whisk time for its
// graceful shutdown, and (with systemd-analyze installed) that systemd
// itself accepts both units.
func TestSystemdUnits(t *testing.T) {
	svc := parseUnit(t, "systemd/whisk.service")
	sock := parseUnit(t, "systemd/whisk.socket")
	for key, want := range map[string]string{
		"Type":         "notify",
		"NotifyAccess": "main",
		"ExecReload":   "/bin/kill -HUP $MAINPID",
		"KillSignal":   "SIGTERM",
		"KillMode":     "mixed",
		"ExecStart":    "/usr/local/bin/whisk serve --config " + configPath,
	} {
		if got := svc.get("Service", key); got != want {
			t.Errorf("whisk.service: %s=%s, want %s", key, got, want)
		}
	}
	if !slices.Contains(svc["Unit"]["Requires"], "whisk.socket") {
		t.Error("whisk.service does not require whisk.socket")
	}
	if len(sock["Socket"]["ListenStream"]) == 0 {
		t.Error("whisk.socket has no ListenStream")
	}
	if a := sock.get("Socket", "Accept"); a != "" && a != "no" {
		t.Errorf("whisk.socket: Accept=%s; whisk takes listening sockets (Accept=no)", a)
	}

	// TimeoutStopSec covers the graceful stop of the config it serves.
	data, err := os.ReadFile("whisk.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := loadWhiskConfig(t, "deploy/whisk.toml", data)
	stop, err := time.ParseDuration(svc.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("whisk.service: TimeoutStopSec: %v", err)
	}
	if need := cfg.Server.ShutdownDelay + cfg.GracefulTimeout(); stop <= need {
		t.Errorf("whisk.service: TimeoutStopSec=%v, want more than shutdown_delay + graceful_timeout = %v", stop, need)
	}

	// An unprivileged whisk: the service must not also keep what only the
	// root mode needs, nor set what breaks it.
	if svc.get("Service", "User") != "" {
		if cbs := svc.get("Service", "CapabilityBoundingSet"); cbs != "" {
			t.Errorf("whisk.service: User= with CapabilityBoundingSet=%s; an unprivileged whisk needs none", cbs)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the units were parsed, not verified by systemd")
	}
	// systemd-analyze verify wants ExecStart's program to exist: stand in
	// this test binary for /usr/local/bin/whisk.
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"whisk.service", "whisk.socket"} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/whisk"), []byte(self))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "whisk.socket"), filepath.Join(dir, "whisk.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// Any output is a finding: unknown keys are only warned about.
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// --- Kubernetes ---

// decodeStrict decodes a YAML document into v, rejecting unknown fields
// (a misspelt or misplaced key), as `kubectl apply --validate=strict` would.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

// manifests holds the decoded objects of deploy/kubernetes.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	pdb        *policyv1.PodDisruptionBudget
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kubernetes/*.yaml (%v)", err)
	}
	var m manifests
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			where := fmt.Sprintf("%s (document %d)", file, i+1)
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				m.deployment = &appsv1.Deployment{}
				obj = m.deployment
			case "v1 Service":
				m.service = &corev1.Service{}
				obj = m.service
			case "v1 ConfigMap":
				m.configMap = &corev1.ConfigMap{}
				obj = m.configMap
			case "autoscaling/v2 HorizontalPodAutoscaler":
				m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
				obj = m.hpa
			case "policy/v1 PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				obj = m.pdb
			default:
				t.Fatalf("%s: %s %s: not a kind this test knows; add it here so it is checked", where, head.APIVersion, head.Kind)
			}
			if err := decodeStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	if m.deployment == nil || m.service == nil || m.configMap == nil || m.hpa == nil || m.pdb == nil {
		t.Fatalf("want a Deployment, Service, ConfigMap, HorizontalPodAutoscaler and PodDisruptionBudget in kubernetes/, got %+v", m)
	}
	return m
}

// selects reports whether every label of selector is on labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesManifests decodes every manifest strictly into its
// k8s.io/api type and checks that they fit together and fit whisk's
// config: probes on the health listener's port and paths, the grace period
// covering the graceful stop, selectors matching the pods, the autoscaler
// aiming at the Deployment.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment
	pod := d.Spec.Template
	labels := pod.Labels

	// The ConfigMap's whisk.toml loads, and the pod mounts it where the
	// image reads its config.
	toml, ok := m.configMap.Data["whisk.toml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no whisk.toml", m.configMap.Name)
	}
	cfg, raw := loadWhiskConfig(t, "ConfigMap "+m.configMap.Name, []byte(toml))
	if raw["chdir"] != "/app" || raw["python"] != "/opt/venv" {
		t.Errorf("ConfigMap whisk.toml: chdir = %v, python = %v; want the image's /app and /opt/venv", raw["chdir"], raw["python"])
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	mounted := false
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != m.configMap.Name {
			continue
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == v.Name && vm.MountPath == filepath.Dir(configPath) {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the container does not mount ConfigMap %s at %s", m.configMap.Name, filepath.Dir(configPath))
	}

	// Ports: the container declares whisk's listeners.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	want := map[string]string{"http": cfg.Server.Bind[0], "health": cfg.Server.HealthBind, "metrics": cfg.Server.AdminBind}
	for name, bind := range want {
		if bind == "" {
			t.Errorf("ConfigMap whisk.toml sets no listener for port %s", name)
			continue
		}
		if got := ports[name]; int(got) != port(t, bind) {
			t.Errorf("container port %s = %d, want %d (%s)", name, got, port(t, bind), bind)
		}
		if !everyAddress(bind) {
			t.Errorf("ConfigMap whisk.toml: %s listens on %s, which the pod address does not reach", name, bind)
		}
	}
	if pod.Annotations["prometheus.io/port"] != strconv.Itoa(port(t, cfg.Server.AdminBind)) {
		t.Errorf("prometheus.io/port %q, want admin_bind's port", pod.Annotations["prometheus.io/port"])
	}

	// Probes: /readyz for readiness, /healthz for liveness, on health_bind.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("%s path %s, want %s", p.name, g.Path, p.path)
		}
		got := int(g.Port.IntVal)
		if g.Port.StrVal != "" {
			got = int(ports[g.Port.StrVal])
		}
		if got != port(t, cfg.Server.HealthBind) {
			t.Errorf("%s on port %s (%d), want health_bind's %d", p.name, g.Port.String(), got, port(t, cfg.Server.HealthBind))
		}
	}

	// The grace period covers whisk's graceful stop.
	need := cfg.Server.ShutdownDelay + cfg.GracefulTimeout()
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("no terminationGracePeriodSeconds; want at least shutdown_delay + graceful_timeout = %v", need)
	} else if time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %d, want at least shutdown_delay + graceful_timeout = %v", *g, need)
	}
	if cfg.Server.ShutdownDelay <= 0 {
		t.Error("ConfigMap whisk.toml: no shutdown_delay: the pod would stop before the endpoints drop it")
	}

	// WHISK_PROCESSES follows the CPU limit, which must be set.
	for _, e := range c.Env {
		if e.Name == "WHISK_PROCESSES" {
			if e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.cpu" {
				t.Errorf("WHISK_PROCESSES: want it from limits.cpu")
			}
			if c.Resources.Limits.Cpu().IsZero() {
				t.Error("WHISK_PROCESSES comes from limits.cpu, but no CPU limit is set")
			}
		}
	}
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("no CPU request: the autoscaler's utilization is relative to it")
	}

	// Non-root, as the image's USER.
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod does not run as a non-root user (runAsNonRoot, runAsUser)")
	}
	if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the container allows privilege escalation")
	}

	// Selectors.
	if !selects(d.Spec.Selector.MatchLabels, labels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector.MatchLabels, labels)
	}
	if !selects(m.service.Spec.Selector, labels) {
		t.Errorf("Service selector %v does not match the pod labels %v", m.service.Spec.Selector, labels)
	}
	if !selects(m.pdb.Spec.Selector.MatchLabels, labels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels %v", m.pdb.Spec.Selector.MatchLabels, labels)
	}
	for _, sp := range m.service.Spec.Ports {
		if _, ok := ports[sp.TargetPort.StrVal]; sp.TargetPort.StrVal != "" && !ok {
			t.Errorf("Service port %s targets %q, which the container does not declare", sp.Name, sp.TargetPort.StrVal)
		}
		if sp.TargetPort.StrVal == "" && int(sp.TargetPort.IntVal) != port(t, cfg.Server.Bind[0]) {
			t.Errorf("Service port %s targets %d, not whisk's bind", sp.Name, sp.TargetPort.IntVal)
		}
	}

	// The autoscaler scales this Deployment, which leaves it the count.
	ref := m.hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s %s, want apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 1 || *m.hpa.Spec.MinReplicas > m.hpa.Spec.MaxReplicas {
		t.Errorf("HPA replicas min %v max %d", m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas)
	}
	if d.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas: every apply would reset the autoscaler's count")
	}
	if p := m.pdb.Spec.MinAvailable; p != nil && p.IntVal >= *m.hpa.Spec.MinReplicas {
		t.Errorf("PodDisruptionBudget minAvailable %d leaves no pod evictable at the HPA's minimum %d", p.IntVal, *m.hpa.Spec.MinReplicas)
	}
}

// TestDecodeStrictRejects makes sure the strict decoding catches what it is
// for: a misspelt field and a field in the wrong place.
func TestDecodeStrictRejects(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nspec:\n  selectr: {a: b}\n",
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  ports: []\n",
	} {
		if err := decodeStrict([]byte(doc), &corev1.Service{}); err == nil {
			t.Errorf("decodeStrict accepted:\n%s", doc)
		}
	}
}
