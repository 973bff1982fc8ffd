// Command bay is Shipyard's control plane: `bay` or `bay serve` starts the server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/tenant"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] != "serve" && os.Args[1] != "keys" {
		fmt.Fprintf(os.Stderr, "usage: bay [serve]\n       bay keys mint|list|rotate|revoke ...   (API keys in the configured database)\n\nConfig: $BAY_CONFIG_FILE, else ./config.yaml, else /etc/bay/config.yaml, else defaults;\nBAY_* variables override the file (nested keys with __, e.g. BAY_SERVER__PORT).\n")
		os.Exit(2)
	}
	cfg, err := config.Load(config.EnvLookup(os.Environ()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bay: config: %v\n", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "keys" {
		os.Exit(keys(cfg, os.Args[2:]))
	}
	log := app.NewLogger(cfg, os.Stderr)
	for _, name := range config.UnusedEnv(os.Environ()) {
		log.Warn("environment variable matches no setting", "name", name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		log.Error("bay: start", "err", err)
		os.Exit(1)
	}
	err = a.Run(ctx)
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Error("bay: stopped", "err", err)
		os.Exit(1)
	}
}

// keys runs `bay keys ...` on the configured database.
func keys(cfg *config.Config, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, cfg.Database.Driver, cfg.Database.DSN)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bay keys: %v\n", err)
		return 1
	}
	defer st.Close()
	return (&tenant.Service{Store: st}).KeysCommand(ctx, args, os.Stdout, os.Stderr)
}
