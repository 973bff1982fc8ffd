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
	h := mcp.NewHTTPHandler(a, opts)
	a.handle("/mcp", a.authed(func(w http.ResponseWriter, r *http.Request, _ string) { h.ServeHTTP(w, r) }))
}
