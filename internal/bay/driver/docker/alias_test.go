package docker

import (
	"slices"
	"testing"
)

// TestSessionNetworkAliases: the containers of a multi-container session
// carry their hostname as an alias on the session network, so they reach
// each other by container name (the browser opens http://ship:<port>/);
// on any other network nobody gets an alias.
func TestSessionNetworkAliases(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{})
	ctx := t.Context()
	netName := "bay-dt-" + run + "-sess"
	if err := d.CreateNetwork(ctx, netName, map[string]string{labelTest: run}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ship", "browser"} {
		spec := testSpec(run, name, img)
		spec.Hostname, spec.Network = name, netName
		id, err := d.Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ep := info.NetworkSettings.Networks[netName]
		if ep == nil || !slices.Contains(ep.Aliases, name) {
			t.Fatalf("%s: endpoint on %s = %+v, want alias %q", name, netName, ep, name)
		}
	}
	single := testSpec(run, "single", img)
	single.Hostname = "ship"
	id, err := d.Create(ctx, single)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for n, ep := range info.NetworkSettings.Networks {
		if slices.Contains(ep.Aliases, "ship") {
			t.Fatalf("a container without a session network got alias ship on %s", n)
		}
	}
}
