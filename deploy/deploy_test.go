// Package deploy holds the files that run Herald elsewhere than from a shell: the systemd unit
// (systemd/), next to the Helm chart (charts/herald) and the Dockerfile at the root. Its tests
// check them with the tools that read them: helm and systemd-analyze.
package deploy

import (
	"bytes"
	"errors"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// tool finds a command on PATH or in GOPATH/bin (where `go install` puts helm). Without it the
// test is skipped, or fails when CI is set.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", name); fileExists(p) {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: %s", name, install)
	}
	t.Skipf("%s is missing: %s", name, install)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

const chart = "../charts/herald"

// object is one decoded Kubernetes object.
type object map[string]any

// get walks a path of map keys and list indexes ("spec", "template", 0, ...).
func (o object) get(path ...any) any {
	var v any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// render runs `helm template` with --set values and decodes every object, by kind.
func render(t *testing.T, helm string, set ...string) map[string]object {
	t.Helper()
	args := []string{"template", "r", chart}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helm template %v: %v\n%s", set, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	objs := map[string]object{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var m map[string]any // not object: yaml would give nested maps that type too
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding helm's output: %v\n%s", err, out)
		}
		if m == nil {
			continue
		}
		o := object(m)
		kind, _ := o["kind"].(string)
		if _, dup := objs[kind]; dup {
			t.Fatalf("two objects of kind %s", kind)
		}
		objs[kind] = o
	}
}

// env returns the container's environment: name → value, or "secret:NAME/KEY" for a secret
// reference.
func env(t *testing.T, d object) map[string]string {
	t.Helper()
	vars := map[string]string{}
	list, _ := d.get("spec", "template", "spec", "containers", 0, "env").([]any)
	for _, e := range list {
		e := object(e.(map[string]any))
		name := e.get("name").(string)
		if v, ok := e.get("value").(string); ok {
			vars[name] = v
			continue
		}
		vars[name] = "secret:" + e.get("valueFrom", "secretKeyRef", "name").(string) + "/" + e.get("valueFrom", "secretKeyRef", "key").(string)
	}
	return vars
}

// checkPod checks the Deployment d: its replicas, update strategy and transport URL, and what
// both modes share: probes on the operations port, the unprivileged user, the read-only root
// filesystem with every capability dropped, and the keys from the Secret.
func checkPod(t *testing.T, d object, replicas int, strategy, transportURL string) {
	t.Helper()
	if d.get("spec", "replicas") != replicas || d.get("spec", "strategy", "type") != strategy {
		t.Errorf("replicas %v, strategy %v; want %d, %s", d.get("spec", "replicas"), d.get("spec", "strategy", "type"), replicas, strategy)
	}
	c := object(d.get("spec", "template", "spec", "containers", 0).(map[string]any))
	want := map[string]any{
		"livenessProbe.path":                          "/healthz",
		"livenessProbe.port":                          "ops",
		"readinessProbe.path":                         "/readyz",
		"readinessProbe.port":                         "ops",
		"securityContext.readOnlyRootFilesystem":      true,
		"securityContext.allowPrivilegeEscalation":    false,
		"securityContext.capabilities.drop":           "ALL",
		"pod.securityContext.runAsNonRoot":            true,
		"pod.securityContext.runAsUser":               65532,
		"pod.automountServiceAccountToken":            false,
		"pod.terminationGracePeriodSeconds (over 10)": true,
	}
	got := map[string]any{
		"livenessProbe.path":                          c.get("livenessProbe", "httpGet", "path"),
		"livenessProbe.port":                          c.get("livenessProbe", "httpGet", "port"),
		"readinessProbe.path":                         c.get("readinessProbe", "httpGet", "path"),
		"readinessProbe.port":                         c.get("readinessProbe", "httpGet", "port"),
		"securityContext.readOnlyRootFilesystem":      c.get("securityContext", "readOnlyRootFilesystem"),
		"securityContext.allowPrivilegeEscalation":    c.get("securityContext", "allowPrivilegeEscalation"),
		"securityContext.capabilities.drop":           c.get("securityContext", "capabilities", "drop", 0),
		"pod.securityContext.runAsNonRoot":            d.get("spec", "template", "spec", "securityContext", "runAsNonRoot"),
		"pod.securityContext.runAsUser":               d.get("spec", "template", "spec", "securityContext", "runAsUser"),
		"pod.automountServiceAccountToken":            d.get("spec", "template", "spec", "automountServiceAccountToken"),
		"pod.terminationGracePeriodSeconds (over 10)": d.get("spec", "template", "spec", "terminationGracePeriodSeconds").(int) > 10,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	ports := map[string]int{}
	for _, p := range c.get("ports").([]any) {
		p := object(p.(map[string]any))
		ports[p.get("name").(string)] = p.get("containerPort").(int)
	}
	if ports["http"] != 8080 || ports["ops"] != 2019 {
		t.Errorf("ports %v, want http 8080 and ops 2019", ports)
	}
	e := env(t, d)
	for k, w := range map[string]string{
		"SERVER_NAME":                ":8080",
		"MERCURE_PUBLISHER_JWT_KEY":  "secret:r-herald/publisher-jwt-key",
		"MERCURE_SUBSCRIBER_JWT_KEY": "secret:r-herald/subscriber-jwt-key",
		"MERCURE_EXTRA_DIRECTIVES":   "metrics_addr :2019\n",
		"MERCURE_TRANSPORT_URL":      transportURL,
	} {
		if e[k] != w {
			t.Errorf("env %s = %q, want %q", k, e[k], w)
		}
	}
}

// TestHelmChart lints the chart and renders it in both modes: one node with its bolt file on a
// persistent volume, and three replicas on a shared Redis transport.
func TestHelmChart(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	for _, set := range [][]string{nil, {"transport.url=redis://redis:6379/0?stream=herald", "serviceMonitor.enabled=true", "ingress.enabled=true"}} {
		args := []string{"lint", "--strict", chart}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
			t.Fatalf("helm lint --strict %v: %v\n%s", set, err, out)
		}
	}

	t.Run("one node", func(t *testing.T) {
		objs := render(t, helm, "jwt.publisherKey=pub-key", "transport.boltOptions=size=500000")
		d := objs["Deployment"]
		checkPod(t, d, 1, "Recreate", "bolt:///data/herald.db?size=500000")
		if d.get("spec", "template", "spec", "volumes", 0, "persistentVolumeClaim", "claimName") != "r-herald" ||
			d.get("spec", "template", "spec", "containers", 0, "volumeMounts", 0, "mountPath") != "/data" {
			t.Errorf("the data volume is not the claim mounted at /data: %v", d.get("spec", "template", "spec", "volumes"))
		}
		if objs["PersistentVolumeClaim"].get("spec", "resources", "requests", "storage") != "1Gi" {
			t.Errorf("claim %v", objs["PersistentVolumeClaim"])
		}
		if s := objs["Secret"]; s.get("data", "publisher-jwt-key") != "cHViLWtleQ==" || s.get("data", "transport-url") != nil {
			t.Errorf("secret data %v", s.get("data"))
		}
		if objs["PodDisruptionBudget"].get("spec", "maxUnavailable") != 1 {
			t.Errorf("PDB %v", objs["PodDisruptionBudget"])
		}
		for _, kind := range []string{"ServiceMonitor", "Ingress"} {
			if objs[kind] != nil {
				t.Errorf("%s rendered, though not enabled", kind)
			}
		}
	})

	t.Run("cluster", func(t *testing.T) {
		url := "redis://:secret@redis:6379/0?stream=herald"
		objs := render(t, helm, "transport.url="+url, "replicaCount=3", "serviceMonitor.enabled=true", "ingress.enabled=true")
		d := objs["Deployment"]
		checkPod(t, d, 3, "RollingUpdate", "secret:r-herald/transport-url")
		if got := objs["Secret"].get("data", "transport-url"); got != "cmVkaXM6Ly86c2VjcmV0QHJlZGlzOjYzNzkvMD9zdHJlYW09aGVyYWxk" {
			t.Errorf("secret transport-url %v", got)
		}
		if objs["PersistentVolumeClaim"] != nil || d.get("spec", "template", "spec", "volumes", 0, "emptyDir") == nil {
			t.Error("cluster mode has a persistent volume")
		}
		if m := objs["ServiceMonitor"]; m.get("spec", "endpoints", 0, "port") != "ops" || m.get("spec", "endpoints", 0, "path") != "/metrics" {
			t.Errorf("ServiceMonitor %v", m)
		}
		if i := objs["Ingress"]; i.get("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "name") != "http" {
			t.Errorf("Ingress %v", i)
		}
	})

	t.Run("bolt is not a cluster transport", func(t *testing.T) {
		out, err := exec.Command(helm, "template", "r", chart, "--set", "transport.url=bolt:///data/x.db").CombinedOutput()
		if err == nil || !strings.Contains(string(out), `transport.url: scheme "bolt" is not a cluster transport (want redis, rediss or nats)`) {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
	})
}

// TestSystemdUnit checks deploy/systemd/herald.service with systemd-analyze: `verify` (with
// ExecStart pointed at an executable that exists here, this test's own binary) reports
// nothing, the unit keeps the settings the documentation promises, and `security --offline`
// rates its exposure at most 2 (of 10; lower is better).
func TestSystemdUnit(t *testing.T) {
	sa := tool(t, "systemd-analyze", "apt-get install -y systemd")
	unit, err := os.ReadFile("systemd/herald.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"ExecStart=/usr/local/bin/herald serve", "DynamicUser=yes", "StateDirectory=herald",
		"WorkingDirectory=/var/lib/herald", "EnvironmentFile=/etc/herald/herald.env",
		"Environment=MERCURE_TRANSPORT_URL=bolt:///var/lib/herald/herald.db",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
	} {
		if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
			t.Errorf("the unit lacks %q", line)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "herald.service")
	if err := os.WriteFile(path, bytes.Replace(unit, []byte("ExecStart=/usr/local/bin/herald"), []byte("ExecStart="+self), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	_, after, _ := bytes.Cut(out, []byte("Overall exposure level for herald.service: "))
	level, _, _ := bytes.Cut(after, []byte(" "))
	if f, err := strconv.ParseFloat(string(level), 64); err != nil || f > 2 {
		t.Fatalf("exposure level %q, want at most 2:\n%s", level, out)
	}
}
