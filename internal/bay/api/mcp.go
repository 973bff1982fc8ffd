package api

import (
	"net/http"

	"github.com/shipyard/shipyard/internal/bay/mcp"
)

// mcpRoutes serves the MCP server (streamable HTTP) at /mcp. Its tools call
// this API in-process with the MCP request's credentials, so /mcp has the
// auth and owner of /v1; a request without a valid key is refused with 401
// here, before any MCP message is read.
func (a *API) mcpRoutes() {
	opts := mcp.DefaultOptions()
	opts.Log = a.log
	// Building the MCP server derives every tool's JSON schema by reflection:
	// ~50 ms of CPU on the bench machine, the largest step of Bay's start after
	// the Go runtime's package init and the migrations. It is built
	// beside the start instead, and an /mcp request that comes first waits.
	var h http.Handler
	built := make(chan struct{})
	go func() {
		defer close(built)
		h = mcp.NewHTTPHandler(a, opts)
	}()
	a.handle("/mcp", a.authed(func(w http.ResponseWriter, r *http.Request, _ string) {
		select {
		case <-built:
			h.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
}
