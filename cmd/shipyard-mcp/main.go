// Command shipyard-mcp is Shipyard's MCP server over stdio, for desktop MCP
// clients that launch a command. It talks to a Bay at SHIPYARD_ENDPOINT_URL
// (or BAY_ENDPOINT) with SHIPYARD_ACCESS_TOKEN (or BAY_TOKEN), like
// Shipyard-Neo's shipyard-mcp. Bay also serves the same tools at /mcp.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/internal/bay/mcp"
	"github.com/shipyard/shipyard/pkg/shipyard"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "shipyard-mcp: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	endpoint, token := mcp.Endpoint(os.Getenv)
	if endpoint == "" {
		return fmt.Errorf("SHIPYARD_ENDPOINT_URL environment variable is required. Set it in your MCP configuration")
	}
	if token == "" {
		return fmt.Errorf("SHIPYARD_ACCESS_TOKEN environment variable is required. Set it in your MCP configuration")
	}
	opts := mcp.FromEnv(os.Getenv)
	opts.LocalFiles = true
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bay, err := shipyard.New(endpoint, token, shipyard.WithHTTPClient(&http.Client{Timeout: opts.CallTimeout}))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mcp.NewServer(bay, opts).Run(ctx, &sdk.StdioTransport{})
}
