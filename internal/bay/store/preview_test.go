package store_test

import (
	"fmt"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/store"
)

func TestPreviewKeyAndGenerations(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		// Replicas starting at once agree on one key: the first one stored.
		replicas := []*store.Store{e.s, e.replica(t)}
		keys := make([]string, 8)
		errs := make([]error, len(keys))
		parallel(len(keys), func(i int) {
			keys[i], errs[i] = replicas[i%2].PreviewKey(e.ctx, fmt.Sprintf("key-%d", i), t0)
		})
		for i := range keys {
			must(t, fmt.Sprintf("PreviewKey %d", i), errs[i])
			mustEqual(t, "PreviewKey", keys[i], keys[0])
		}

		all, one, err := e.s.PreviewGenerations(e.ctx, "sbx-1", 8000)
		must(t, "PreviewGenerations", err)
		mustEqual(t, "fresh generations", []int64{all, one}, []int64{0, 0})
		g, err := e.s.BumpPreviewGeneration(e.ctx, "sbx-1", 8000)
		must(t, "bump port", err)
		mustEqual(t, "bumped", g, int64(1))
		g, err = replicas[1].BumpPreviewGeneration(e.ctx, "sbx-1", 8000)
		must(t, "bump port again", err)
		mustEqual(t, "bumped again", g, int64(2))
		_, err = e.s.BumpPreviewGeneration(e.ctx, "sbx-1", 0)
		must(t, "bump all", err)
		all, one, err = e.s.PreviewGenerations(e.ctx, "sbx-1", 8000)
		must(t, "PreviewGenerations", err)
		mustEqual(t, "generations", []int64{all, one}, []int64{1, 2})
		all, one, err = e.s.PreviewGenerations(e.ctx, "sbx-1", 9000)
		must(t, "PreviewGenerations other port", err)
		mustEqual(t, "other port", []int64{all, one}, []int64{1, 0})
		all, one, err = e.s.PreviewGenerations(e.ctx, "sbx-2", 8000)
		must(t, "PreviewGenerations other sandbox", err)
		mustEqual(t, "other sandbox", []int64{all, one}, []int64{0, 0})

		_, err = e.s.BumpPreviewGeneration(e.ctx, "sbx-2", 8000)
		must(t, "bump other sandbox", err)
		must(t, "DeletePreviewGenerations", e.s.DeletePreviewGenerations(e.ctx, "sbx-1"))
		all, one, err = e.s.PreviewGenerations(e.ctx, "sbx-1", 8000)
		must(t, "PreviewGenerations after delete", err)
		mustEqual(t, "deleted sandbox", []int64{all, one}, []int64{0, 0})
		all, one, err = e.s.PreviewGenerations(e.ctx, "sbx-2", 8000)
		must(t, "PreviewGenerations other sandbox after delete", err)
		mustEqual(t, "other sandbox kept", []int64{all, one}, []int64{0, 1})
	})
}
