// Command shipyard is Shipyard's command-line client of Bay: sandboxes,
// streamed execution, background processes, files, an interactive shell,
// cargos and profiles. Run `shipyard help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/shipyard/shipyard/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	dir := ""
	if d, err := os.UserConfigDir(); err == nil {
		dir = filepath.Join(d, "shipyard")
	}
	code := cli.Run(ctx, os.Args[1:], cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, ConfigDir: dir})
	stop()
	os.Exit(code)
}
