package docker

import (
	"errors"
	"strconv"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// A session of two containers is two containers on a network of its own,
// named as before (bay-<id>-<name>, bay_net_<id>); one removed behind the
// driver's back makes the session not running, though the other runs; a
// session of one has no network and is found by name.
func TestSessionShapes(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{})
	ctx := t.Context()
	id := "dt-" + run + "-shape"
	ctr := func(name string, port int) driver.ContainerSpec {
		return driver.ContainerSpec{Name: name, Image: img, Port: port, Env: map[string]string{"PORT": strconv.Itoa(port)}}
	}
	labels := map[string]string{labelTest: run}
	if _, err := d.CreateSession(ctx, driver.SessionSpec{ID: id, Labels: labels,
		Containers: []driver.ContainerSpec{ctr("ship", 8123), ctr("browser", 8124)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bay-" + id + "-ship", "bay-" + id + "-browser"} {
		if _, err := cli.ContainerInspect(ctx, name); err != nil {
			t.Fatalf("container %s: %v", name, err)
		}
	}
	if _, err := cli.NetworkInspect(ctx, "bay_net_"+id, network.InspectOptions{}); err != nil {
		t.Fatalf("session network: %v", err)
	}
	if err := cli.ContainerRemove(ctx, "bay-"+id+"-browser", container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	s, err := d.InspectSession(ctx, id)
	if err != nil || s.State != driver.StateExited || len(s.Containers) != 1 || s.Containers[0].State != driver.StateRunning {
		t.Fatalf("after its browser was removed: %+v, %v; want exited with ship still running", s, err)
	}
	if err := d.DestroySession(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkInspect(ctx, "bay_net_"+id, network.InspectOptions{}); err == nil {
		t.Fatal("session network left after DestroySession")
	}

	single := "dt-" + run + "-single"
	if _, err := d.CreateSession(ctx, driver.SessionSpec{ID: single, Labels: labels,
		Containers: []driver.ContainerSpec{ctr("ship", 8123)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, "bay-session-"+single); err != nil {
		t.Fatalf("single container name: %v", err)
	}
	if _, err := cli.NetworkInspect(ctx, "bay_net_"+single, network.InspectOptions{}); err == nil {
		t.Fatal("a session of one container got a network")
	}
	if s, err := d.InspectSession(ctx, single); err != nil || s.State != driver.StateCreated || s.Containers[0].Name != "ship" {
		t.Fatalf("single session: %+v, %v", s, err)
	}
	if err := d.DestroySession(ctx, single); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InspectSession(ctx, single); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("after DestroySession: %v", err)
	}
}
