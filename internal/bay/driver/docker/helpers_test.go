package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// labelTest marks what a test in this package creates outside the driver
// suite, so the test's clean-up finds it.
const labelTest = "bay.drivertest.test"

// testServerRepo is the repository of the tiny runtime image these tests build
// from drivertest/testserver (static Go binary + /workspace owned by 1000).
const testServerRepo = "bay-drivertest-server"

// engine is the raw client the tests inspect with; nil when no daemon answers.
var engine struct {
	once sync.Once
	cli  *client.Client
	err  error
}

// rawClient returns a client for the local engine, or skips the test when no
// Docker daemon is reachable.
func rawClient(t *testing.T) *client.Client {
	t.Helper()
	engine.once.Do(func() {
		cli, err := client.NewClientWithOpts(client.WithHost(DefaultSocket), client.WithAPIVersionNegotiation())
		if err != nil {
			engine.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			_ = cli.Close()
			engine.err = err
			return
		}
		engine.cli = cli
	})
	if engine.err != nil {
		t.Skipf("no Docker daemon reachable at %s (%v); the Docker driver tests need one (make test has one)", DefaultSocket, engine.err)
	}
	return engine.cli
}

// newDriver returns a driver with cfg (logging to the test) and a unique label
// value; everything carrying labelTest=<value> is removed when the test ends.
func newDriver(t *testing.T, cfg Config) (*Driver, string) {
	t.Helper()
	cli := rawClient(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	run := randHex(4)
	t.Cleanup(func() {
		sweep(t, cli, run)
		_ = d.Close()
	})
	return d, run
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sweep(t *testing.T, cli *client.Client, run string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelTest+"="+run))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Errorf("sweep: %v", err)
	}
	for _, c := range cs {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("sweep container %s: %v", c.ID, err)
		}
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Errorf("sweep: %v", err)
	}
	for _, v := range vs.Volumes {
		if err := cli.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("sweep volume %s: %v", v.Name, err)
		}
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Errorf("sweep: %v", err)
	}
	for _, n := range ns {
		if err := cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("sweep network %s: %v", n.Name, err)
		}
	}
}

var testImg struct {
	once sync.Once
	ref  string
	err  error
}

// testServerImage builds (once per process, cached by content hash across runs)
// the tiny runtime image and returns its reference.
func testServerImage(t *testing.T) string {
	t.Helper()
	cli := rawClient(t)
	testImg.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		testImg.ref, testImg.err = buildTestServerImage(ctx, cli)
	})
	if testImg.err != nil {
		t.Fatalf("building the test runtime image: %v", testImg.err)
	}
	return testImg.ref
}

func buildTestServerImage(ctx context.Context, cli *client.Client) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go toolchain needed to build the test image: %w", err)
	}
	dir, err := os.MkdirTemp("", "bay-drivertest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "testserver")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin,
		"github.com/shipyard/shipyard/internal/bay/driver/drivertest/testserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build testserver: %w\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	ref := testServerRepo + ":" + hex.EncodeToString(sum[:6])
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(0, 0)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "workspace/", Mode: 0o755, Uid: 1000, Gid: 1000, ModTime: mod}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: mod}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "testserver", Mode: 0o755, Size: int64(len(data)), ModTime: mod}, data},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(e.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`CMD ["/testserver"]`, "LABEL " + labelTest + "=image"}})
	if err != nil {
		return "", fmt.Errorf("import test image: %w", err)
	}
	defer rc.Close()
	if err := drainJSONStream(rc); err != nil {
		return "", fmt.Errorf("import test image: %w", err)
	}
	// Drop builds of older testserver versions.
	old, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", testServerRepo))})
	if err == nil {
		for _, im := range old {
			if !containsString(im.RepoTags, ref) {
				_, _ = cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
	return ref, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func drainJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// execIn runs argv in a running container as the container's user and returns stdout.
func execIn(ctx context.Context, cli *client.Client, id string, argv ...string) (string, error) {
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("exec create: %w", err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("exec attach: %w", err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		return "", fmt.Errorf("exec output: %w", err)
	}
	ins, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return "", fmt.Errorf("exec inspect: %w", err)
	}
	if ins.ExitCode != 0 {
		return stdout.String(), fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), ins.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
