// Package cli is the shipyard command: a small client of Bay on the Go SDK
// (pkg/shipyard). cmd/shipyard only wires it to the process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// Exit codes of the command (besides exec's, which are the command's own).
const (
	ExitOK          = 0
	ExitError       = 1   // Bay or the network failed, or the operation did
	ExitUsage       = 2   // bad flags or arguments, no endpoint
	ExitNotFound    = 3   // the sandbox, process, file or cargo does not exist
	ExitAuth        = 4   // unauthorized or forbidden
	ExitUnavailable = 5   // Bay busy or the sandbox not ready (429, 503): retry later
	ExitTimeout     = 124 // the command or Bay timed out (as timeout(1))
	ExitInterrupted = 130 // interrupted (Ctrl-C)
)

// IO is the process around the command.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// ConfigDir is where config.yaml/config.json is looked for when no
	// --config is given (usually ~/.config/shipyard); "" = nowhere.
	ConfigDir string
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError carries an exit code chosen by a command (exec's exit status).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// app is one run of the command.
type app struct {
	IO
	client *shipyard.Client
	json   bool
}

const usage = `Usage: shipyard [global flags] <command> [flags] [args]

Sandboxes:
  create [--profile P] [--ttl S] [--cargo C]   create a sandbox; prints its id
  ls [--status S]                              list sandboxes
  get <id>                                     show one sandbox
  rm <id>...                                   delete sandboxes
  ttl <id> <seconds>                           extend a sandbox's time to live
  stop <id>                                    stop its containers (it restarts on the next call)
Execution:
  exec [--python] [--timeout S] [--cwd D] <id> -- <command or code>
                                               run and stream output; exits with the command's code
  run [--cwd D] [--env K=V] <id> -- <command>  start a background process; prints its id
  ps <id>                                      list background processes
  logs [-f] <id> <process>                     print (and follow) a process's output
  kill [--signal SIG] [--rm] <id> <process>    signal (default TERM) or remove a process
  shell <id>                                   interactive terminal
Files:
  cp <file> <id>:<path>                        upload ("-" reads stdin)
  cp <id>:<path> <file>                        download ("-" writes stdout)
Other:
  cargo ls [--managed] | cargo create [--size MB] | cargo rm <id>
  profiles                                     list profiles

Global flags (also SHIPYARD_ENDPOINT_URL, SHIPYARD_ACCESS_TOKEN, or a config file
~/.config/shipyard/config.yaml with endpoint: and token:):
  --endpoint URL   Bay's address (default http://127.0.0.1:8114)
  --token TOKEN    API key
  --config FILE    config file
  --json           machine-readable output (every listing and result)
`

// Run runs the command line args (without the program name) and returns the
// process's exit code.
func Run(ctx context.Context, args []string, io IO) int {
	code, err := run(ctx, args, io)
	if err != nil {
		var ue *usageError
		var ee *exitError
		switch {
		case errors.As(err, &ee):
			return ee.code
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(io.Stdout, usage)
			return ExitOK
		case errors.As(err, &ue):
			fmt.Fprintf(io.Stderr, "shipyard: %s\nRun 'shipyard help' for usage.\n", ue.msg)
			return ExitUsage
		}
		fmt.Fprintf(io.Stderr, "shipyard: %s\n", describe(err))
		return exitCode(ctx, err)
	}
	return code
}

func run(ctx context.Context, args []string, io IO) (int, error) {
	g := flag.NewFlagSet("shipyard", flag.ContinueOnError)
	g.SetOutput(io.Stderr)
	g.Usage = func() {}
	endpoint := g.String("endpoint", "", "")
	token := g.String("token", "", "")
	cfgPath := g.String("config", "", "")
	jsonOut := g.Bool("json", false, "")
	if err := g.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, err
		}
		return 0, usagef("%v", err)
	}
	args = g.Args()
	if len(args) == 0 || args[0] == "help" {
		return 0, flag.ErrHelp
	}
	cfg, err := loadConfig(*cfgPath, io.ConfigDir)
	if err != nil {
		return 0, usagef("%v", err)
	}
	ep := first(*endpoint, io.Getenv("SHIPYARD_ENDPOINT_URL"), io.Getenv("BAY_ENDPOINT"), cfg.Endpoint, "http://127.0.0.1:8114")
	tok := first(*token, io.Getenv("SHIPYARD_ACCESS_TOKEN"), io.Getenv("BAY_TOKEN"), cfg.Token)
	// No client timeout: streams and follows last as long as they last; ctx bounds them.
	c, err := shipyard.New(ep, tok, shipyard.WithHTTPClient(&http.Client{}))
	if err != nil {
		return 0, usagef("%v", err)
	}
	a := &app{IO: io, client: c, json: *jsonOut}
	cmd, ok := commands[args[0]]
	if !ok {
		return 0, usagef("unknown command %q", args[0])
	}
	return 0, cmd(a, ctx, args[1:])
}

type command func(a *app, ctx context.Context, args []string) error

var commands map[string]command

func init() {
	commands = map[string]command{
		"create": (*app).create, "ls": (*app).ls, "get": (*app).get, "rm": (*app).rm,
		"ttl": (*app).ttl, "stop": (*app).stop,
		"exec": (*app).exec, "run": (*app).run, "ps": (*app).ps, "logs": (*app).logs,
		"kill": (*app).kill, "shell": (*app).shell, "cp": (*app).cp,
		"cargo": (*app).cargo, "profiles": (*app).profiles,
	}
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// flags returns a command's flag set; --json is accepted on every command.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&a.json, "json", a.json, "")
	return fs
}

// parse parses flags anywhere before "--" and returns the positional
// arguments and what follows "--" (nil when there is no "--").
func parse(fs *flag.FlagSet, args []string) (pos, rest []string, err error) {
	if i := slices.Index(args, "--"); i >= 0 {
		rest = append([]string{}, args[i+1:]...)
		args = args[:i]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, rest, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(name string, pos []string, n int, what string) error {
	if len(pos) != n {
		return usagef("%s: want %s", name, what)
	}
	return nil
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, aligned.
func (a *app) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func deref[T any](p *T, none string) string {
	if p == nil {
		return none
	}
	return fmt.Sprint(*p)
}

// describe renders an error for stderr: Bay's message, code and request id.
func describe(err error) string {
	var ae *shipyard.APIError
	if errors.As(err, &ae) {
		s := ae.Message
		if ae.Code != "" {
			s += " (" + ae.Code
		} else {
			s += fmt.Sprintf(" (HTTP %d", ae.Status)
		}
		if ae.RequestID != "" {
			s += ", request id " + ae.RequestID
		}
		return s + ")"
	}
	return strings.TrimPrefix(err.Error(), "shipyard: ")
}

func exitCode(ctx context.Context, err error) int {
	var ae *shipyard.APIError
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ae):
		switch {
		case ae.Code == shipyard.CodeNotFound || ae.Code == shipyard.CodeFileNotFound || ae.Code == shipyard.CodeProcessNotFound || ae.Status == http.StatusNotFound:
			return ExitNotFound
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return ExitAuth
		case ae.Code == shipyard.CodeTimeout:
			return ExitTimeout
		case ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable:
			return ExitUnavailable
		}
	case errors.Is(err, os.ErrNotExist):
		return ExitNotFound
	}
	return ExitError
}
