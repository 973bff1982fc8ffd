package session

import (
	"context"
	"sync"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/model"
)

// stopGracefully stops, before they are destroyed, the containers of the
// sessions whose runtimes keep state in memory that they save to the cargo on
// a graceful stop: Gull closes Chromium, which writes its cookies and storage
// to the browser profile under /workspace, so they survive an idle reclaim or
// a stop. It waits at most the driver's stop timeout; Ship's state is on disk
// already, so its containers are not waited for.
func (m *Manager) stopGracefully(ctx context.Context, list []*model.Session) {
	var wg sync.WaitGroup
	for _, ss := range list {
		for _, c := range ss.Containers {
			if c.RuntimeType != config.RuntimeGull || c.ContainerID == "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.drv.Stop(ctx, c.ContainerID); err != nil {
					m.log.WarnContext(ctx, "graceful stop failed; destroying anyway", "session_id", ss.ID, "container_id", c.ContainerID, "err", err)
				}
			}()
		}
	}
	wg.Wait()
}
