package shipyard

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// SandboxPage is one page of GET /v1/sandboxes.
type SandboxPage = wire.SandboxPage

// SandboxFilter filters ListSandboxes; zero values are left out.
type SandboxFilter struct {
	Status string // idle, starting, ready, failed, expired
	Limit  int    // 1..200; 0 = Bay's default (50)
	Cursor string // NextCursor of the previous page
}

// ListSandboxes returns one page of the caller's sandboxes.
func (c *Client) ListSandboxes(ctx context.Context, f SandboxFilter) (*SandboxPage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	var out SandboxPage
	return &out, c.do(ctx, http.MethodGet, "/v1/sandboxes", q, nil, &out)
}

// Sandboxes iterates over all the caller's sandboxes, page by page; it stops
// at the first error, which it yields.
func (c *Client) Sandboxes(ctx context.Context, f SandboxFilter) iter.Seq2[Sandbox, error] {
	return func(yield func(Sandbox, error) bool) {
		for {
			page, err := c.ListSandboxes(ctx, f)
			if err != nil {
				yield(Sandbox{}, err)
				return
			}
			for _, s := range page.Items {
				if !yield(s, nil) {
					return
				}
			}
			if page.NextCursor == nil || *page.NextCursor == "" {
				return
			}
			f.Cursor = *page.NextCursor
		}
	}
}

// ExtendTTL pushes a sandbox's expiry back by seconds (under a fresh
// idempotency key, so a retried call extends once).
func (c *Client) ExtendTTL(ctx context.Context, id string, seconds int) (*Sandbox, error) {
	var out Sandbox
	return &out, c.call(ctx, call{method: http.MethodPost, path: sandboxPath(id, "/extend_ttl"),
		in: map[string]int{"extend_by": seconds}, out: &out, idemKey: newKey()})
}

// Keepalive pushes the sandbox's idle deadline back without running anything.
func (c *Client) Keepalive(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, sandboxPath(id, "/keepalive"), nil, nil, nil)
}

// StopSandbox stops the sandbox's containers; its cargo and history stay and
// the next call starts it again.
func (c *Client) StopSandbox(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, sandboxPath(id, "/stop"), nil, nil, nil)
}

// ---- cargos ----

// Cargo is a persistent /workspace volume.
type Cargo = wire.Cargo

// CargoPage is one page of GET /v1/cargos.
type CargoPage = wire.CargoPage

// CreateCargo creates a cargo of sizeMB megabytes (0: Bay's default), under an
// idempotency key.
func (c *Client) CreateCargo(ctx context.Context, sizeMB int) (*Cargo, error) {
	var in any = map[string]any{}
	if sizeMB > 0 {
		in = map[string]int{"size_limit_mb": sizeMB}
	}
	var out Cargo
	return &out, c.call(ctx, call{method: http.MethodPost, path: "/v1/cargos", in: in, out: &out, idemKey: newKey()})
}

// CargoFilter filters ListCargos.
type CargoFilter struct {
	Managed bool // also list cargos that sandboxes manage
	Limit   int
	Cursor  string
}

// ListCargos returns one page of the caller's cargos.
func (c *Client) ListCargos(ctx context.Context, f CargoFilter) (*CargoPage, error) {
	q := url.Values{}
	if f.Managed {
		q.Set("managed", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	var out CargoPage
	return &out, c.do(ctx, http.MethodGet, "/v1/cargos", q, nil, &out)
}

// GetCargo returns one cargo.
func (c *Client) GetCargo(ctx context.Context, id string) (*Cargo, error) {
	var out Cargo
	return &out, c.do(ctx, http.MethodGet, "/v1/cargos/"+url.PathEscape(id), nil, nil, &out)
}

// DeleteCargo deletes a cargo that no sandbox uses.
func (c *Client) DeleteCargo(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/cargos/"+url.PathEscape(id), nil, nil, nil)
}
