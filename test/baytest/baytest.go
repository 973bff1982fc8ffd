// Package baytest starts a real Bay (real store, real Docker driver, the real
// Ship image) inside a test or benchmark and offers a small HTTP client for it.
package baytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/shipyard/shipyard/internal/apispec/speccheck"
	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/logctx"
)

// APIKey is the key every test Bay accepts (owner "default").
const APIKey = "sk-bay-test-0123456789"

// Image is the Ship image tests run.
const Image = "ship:latest"

// Options tune a test Bay.
type Options struct {
	ConfigYAML string            // extra config file content (profiles etc.)
	Env        map[string]string // extra BAY_* variables
	App        app.Options
	Postgres   string // DSN: use PostgreSQL instead of a fresh SQLite file
	DataDir    string // reuse a data dir (restart tests)
	InstanceID string // reuse an instance id (restart tests)
	LogWriter  io.Writer
	Listen     string // address to serve on; "" = 127.0.0.1:0
	// ValidateSpec checks every answer of Do and Must against Bay's OpenAPI
	// document (status declared, JSON body matching its schema); a
	// mismatch fails the test. SHIPYARD_VALIDATE_SPEC=1 turns it on for
	// every Bay (test/bay's TestMain sets it; =0 turns that off).
	ValidateSpec bool
}

// Bay is a running test Bay.
type Bay struct {
	URL        string
	InstanceID string
	DataDir    string
	App        *app.App
	Client     *http.Client
	stop       func()
	stopped    sync.Once
	spec       *speccheck.Checker // nil: answers are not checked
}

// Skip skips unless container tests are enabled (make test sets SHIPYARD_E2E=1).
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv("SHIPYARD_E2E") == "" {
		t.Skip("container test: set SHIPYARD_E2E=1 (make test does, after building the image)")
	}
}

// Start runs a Bay until the test ends; every container and volume carrying its
// instance id is removed at cleanup.
func Start(t testing.TB, o Options) *Bay {
	t.Helper()
	dir := o.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	inst := o.InstanceID
	if inst == "" {
		inst = model.NewID("test")
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(o.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"BAY_CONFIG_FILE":        cfgPath,
		"BAY_DATA_DIR":           dir,
		"BAY_API_KEY":            APIKey,
		"BAY_GC__INSTANCE_ID":    inst,
		"BAY_GC__ENABLED":        "false",
		"BAY_WARM_POOL__ENABLED": "false",
		"BAY_SERVER__HOST":       "127.0.0.1",
		"BAY_SERVER__PORT":       "8114",
		"BAY_DATABASE__URL":      "sqlite:///" + filepath.Join(dir, "bay.db"),
	}
	if o.Postgres != "" {
		env["BAY_DATABASE__URL"] = o.Postgres
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w := o.LogWriter
	if w == nil {
		w = io.Discard
		if os.Getenv("SHIPYARD_TEST_LOG") != "" {
			w = os.Stderr
		}
	}
	log := slog.New(logctx.Handler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})})
	addr := o.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	opts := o.App
	opts.Listener = ln
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, opts)
	if err != nil {
		cancel()
		t.Fatalf("bay: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	url := "http://" + ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		url = fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	b := &Bay{URL: url, InstanceID: inst, DataDir: dir, App: a,
		Client: &http.Client{Timeout: 5 * time.Minute}}
	if v := os.Getenv("SHIPYARD_VALIDATE_SPEC"); o.ValidateSpec || (v != "" && v != "0") {
		if b.spec, err = Spec(); err != nil {
			t.Fatalf("openapi: %v", err)
		}
	}
	b.stop = func() { cancel(); <-done; _ = a.Close() }
	t.Cleanup(func() {
		b.Stop()
		Sweep(t, inst)
	})
	return b
}

// Stop shuts the Bay down (idempotent); containers stay (restart tests).
func (b *Bay) Stop() { b.stopped.Do(b.stop) }

// Sweep removes every container and volume labelled with the instance id, and
// the volumes of cargos they used.
func Sweep(t testing.TB, instanceID string) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx := context.Background()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+instanceID))})
	cargos := map[string]bool{}
	for _, c := range list {
		cargos[c.Labels["bay.cargo_id"]] = true
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	for id := range cargos {
		if id != "" {
			_ = cli.VolumeRemove(ctx, "bay-cargo-"+id, true)
		}
	}
	vols, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+instanceID))})
	for _, v := range vols.Volumes {
		_ = cli.VolumeRemove(ctx, v.Name, true)
	}
	nets, _ := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+instanceID))})
	for _, n := range nets {
		_ = cli.NetworkRemove(ctx, n.ID)
	}
}

// Docker returns a Docker client for assertions.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Response is a decoded HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Code returns error.code of an error body.
func (r *Response) Code() string {
	if e, ok := r.JSON()["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// Req is one request.
type Req struct {
	Method  string
	Path    string
	Body    any // marshalled as JSON unless []byte or io.Reader
	Key     string
	NoAuth  bool
	Headers map[string]string
}

// Do sends a request (authenticated with APIKey unless Key/NoAuth say otherwise).
func (b *Bay) Do(t testing.TB, r Req) *Response {
	t.Helper()
	var body io.Reader
	switch v := r.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	case io.Reader:
		body = v
	default:
		j, _ := json.Marshal(v)
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(r.Method, b.URL+r.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	key := APIKey
	if r.Key != "" {
		key = r.Key
	}
	if !r.NoAuth {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if b.spec != nil {
		// resp.Request is the last request when redirects were followed.
		if err := b.spec.Check(resp.Request, resp.StatusCode, resp.Header, data); err != nil {
			t.Error(err)
		}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Must fails the test unless the status is want; returns the JSON body.
func (b *Bay) Must(t testing.TB, want int, r Req) map[string]any {
	t.Helper()
	resp := b.Do(t, r)
	if resp.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", r.Method, r.Path, resp.Status, want, resp.Body)
	}
	return resp.JSON()
}

// CreateSandbox creates a sandbox and returns its id.
func (b *Bay) CreateSandbox(t testing.TB, body map[string]any) string {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	m := b.Must(t, http.StatusCreated, Req{Method: "POST", Path: "/v1/sandboxes", Body: body})
	id, _ := m["id"].(string)
	if id == "" {
		t.Fatalf("no id in %v", m)
	}
	return id
}

// Python runs code and returns the response body.
func (b *Bay) Python(t testing.TB, id, code string) map[string]any {
	t.Helper()
	return b.Must(t, http.StatusOK, Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
		Body: map[string]any{"code": code}})
}
