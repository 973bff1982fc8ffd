package cluster

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// The warm pool is the deployment's: three replicas keep warm_pool_size
// members between them (not three times as many), concurrent creates on all
// replicas never share a member, the pool is refilled, and a replica's
// graceful shutdown does not drain what the others still use.
func TestWarmPoolIsTheDeployments(t *testing.T) {
	base := skip(t)
	const size = 2
	c := newCluster(t, storetest.FreshDatabase(t, base, "cluster").String(), 3,
		`BAY_PROFILES=[{"id":"python-default","image":"ship:latest","warm_pool_size":2}]`,
		"BAY_WARM_POOL__ENABLED=true", "BAY_WARM_POOL__INTERVAL_SECONDS=1")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			c.dumpLogs()
		}
	}()
	available := func() int {
		return c.count(t, `SELECT COUNT(*) FROM sandboxes WHERE is_warm AND deleted_at IS NULL AND warm_state = 'available'`)
	}
	members := func() int {
		return c.count(t, `SELECT COUNT(*) FROM sandboxes WHERE is_warm AND deleted_at IS NULL`)
	}
	waitFull := func(what string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for available() < size {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d warm sandboxes available after 90 s", what, available(), size)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFull("start-up")
	time.Sleep(3 * time.Second) // several refill intervals on every replica
	if n := members(); n != size {
		t.Fatalf("%d warm sandboxes for a pool of %d on 3 replicas", n, size)
	}
	ds := c.docker(t)
	warmContainers := 0
	for _, ids := range ds.containers {
		warmContainers += len(ids)
	}
	if warmContainers != size {
		t.Fatalf("%d containers for a pool of %d", warmContainers, size)
	}

	// Six creates at once, two per replica: distinct sandboxes, at most `size` warm hits.
	res := make([]result, 6)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = c.createSandbox(ctx, i, "") }()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range res {
		if r.status != http.StatusCreated {
			t.Fatalf("create %d: %s", i, r)
		}
		id, _ := r.json()["id"].(string)
		if seen[id] {
			t.Fatalf("two creates got sandbox %s", id)
		}
		seen[id] = true
	}
	if n := c.count(t, `SELECT COUNT(*) FROM sandboxes WHERE warm_state = 'claimed'`); n > size {
		t.Fatalf("%d warm claims from a pool of %d", n, size)
	}
	waitFull("refill")
	time.Sleep(3 * time.Second)
	if n := members(); n != size {
		t.Fatalf("%d warm sandboxes after the refill, want %d", n, size)
	}

	// One replica leaves gracefully: the others keep the pool.
	c.reps[2].stop()
	if n := available(); n != size {
		t.Fatalf("%d warm sandboxes after one replica left, want %d", n, size)
	}
}
