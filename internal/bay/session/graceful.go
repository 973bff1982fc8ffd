package session

import (
	"context"
	"slices"
	"sync"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/model"
)

// stopGracefully stops, before they are destroyed, the sessions with a
// runtime that keeps state in memory and saves it to the cargo on a graceful
// stop: Gull closes Chromium, which writes its cookies and storage to the
// browser profile under /workspace, so they survive an idle reclaim or a
// stop. It waits at most the driver's stop timeout; sessions of Ship alone
// keep their state on disk already and are not waited for.
func (m *Manager) stopGracefully(ctx context.Context, list []*model.Session) {
	var wg sync.WaitGroup
	for _, ss := range list {
		if !slices.ContainsFunc(ss.Containers, func(c model.ContainerInfo) bool {
			return c.RuntimeType == config.RuntimeGull && c.ContainerID != ""
		}) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.drv.StopSession(ctx, ss.ID); err != nil {
				m.log.WarnContext(ctx, "graceful stop failed; destroying anyway", "session_id", ss.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}
