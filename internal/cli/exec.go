package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// commandText is what follows "--" (or the arguments after the id).
func commandText(pos, rest []string) string {
	if rest == nil {
		rest = pos[1:]
	}
	return strings.Join(rest, " ")
}

func (a *app) exec(ctx context.Context, args []string) error {
	fs := a.flags("exec")
	python := fs.Bool("python", false, "")
	timeout := fs.Int("timeout", 0, "")
	cwd := fs.String("cwd", "", "")
	noKill := fs.Bool("no-kill", false, "")
	pos, rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("exec: want [--python] <id> -- <command>")
	}
	id, text := pos[0], commandText(pos, rest)
	if text == "-" {
		b, err := io.ReadAll(a.Stdin)
		if err != nil {
			return err
		}
		text = string(b)
	}
	if strings.TrimSpace(text) == "" {
		return usagef("exec: no command (put it after --)")
	}
	if *python {
		req := shipyard.PythonExecRequest{Code: text, Timeout: *timeout, KillOnDisconnect: !*noKill}
		res, err := execute(a, func() (*shipyard.PythonResult, error) { return a.client.ExecPython(ctx, id, req) },
			func() (*shipyard.Stream[shipyard.PythonResult], error) { return a.client.StreamPython(ctx, id, req) })
		if err != nil {
			return err
		}
		code := ExitOK
		switch {
		case res.TimedOut:
			code = ExitTimeout
		case !res.Success:
			code = ExitError
		}
		return a.finish(res, code, res.Notice)
	}
	req := shipyard.ShellExecRequest{Command: text, Timeout: *timeout, KillOnDisconnect: !*noKill}
	if *cwd != "" {
		req.Cwd = cwd
	}
	res, err := execute(a, func() (*shipyard.ShellResult, error) { return a.client.ExecShell(ctx, id, req) },
		func() (*shipyard.Stream[shipyard.ShellResult], error) { return a.client.StreamShell(ctx, id, req) })
	if err != nil {
		return err
	}
	code := ExitOK
	switch {
	case res.TimedOut:
		code = ExitTimeout
	case res.ExitCode != nil:
		code = *res.ExitCode
	case !res.Success:
		code = ExitError
	}
	return a.finish(res, code, res.Notice)
}

// finish prints the result (--json) or its notice, and exits with code.
func (a *app) finish(res any, code int, notice *string) error {
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else if notice != nil && *notice != "" {
		fmt.Fprintf(a.Stderr, "shipyard: %s\n", *notice)
	}
	if code != ExitOK {
		return &exitError{code}
	}
	return nil
}

func (a *app) run(ctx context.Context, args []string) error {
	fs := a.flags("run")
	cwd := fs.String("cwd", "", "")
	var env stringList
	fs.Var(&env, "env", "")
	pos, rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("run: want <id> -- <command>")
	}
	req := shipyard.StartProcessRequest{Command: commandText(pos, rest), Cwd: *cwd}
	if strings.TrimSpace(req.Command) == "" {
		return usagef("run: no command (put it after --)")
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("run: --env wants KEY=VALUE, not %q", kv)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	p, err := a.client.StartProcess(ctx, pos[0], req)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(p)
	}
	_, err = fmt.Fprintln(a.Stdout, p.ProcessID)
	return err
}

func (a *app) ps(ctx context.Context, args []string) error {
	fs := a.flags("ps")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("ps", pos, 1, "<id>"); err != nil {
		return err
	}
	ps, err := a.client.ListProcesses(ctx, pos[0])
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []shipyard.Process{}
	}
	if a.json {
		return a.printJSON(ps)
	}
	var rows [][]string
	for _, p := range ps {
		rows = append(rows, []string{p.ProcessID, strconv.Itoa(p.PID), p.Status, deref(p.ExitCode, "-"), p.StartedAt, p.Command})
	}
	return a.table([]string{"PROCESS", "PID", "STATUS", "EXIT", "STARTED", "COMMAND"}, rows)
}

func (a *app) logs(ctx context.Context, args []string) error {
	fs := a.flags("logs")
	follow := fs.Bool("f", false, "")
	fs.BoolVar(follow, "follow", false, "")
	offset := fs.Int64("offset", 0, "")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("logs", pos, 2, "<id> <process>"); err != nil {
		return err
	}
	id, pid := pos[0], pos[1]
	if a.json {
		out, err := a.client.ProcessOutputFrom(ctx, id, pid, *offset, 0)
		if err != nil {
			return err
		}
		return a.printJSON(out)
	}
	if *follow {
		_, err := a.client.FollowProcess(ctx, id, pid, a.Stdout, shipyard.FollowOptions{Offset: *offset,
			OnTruncated: func(from, to int64) {
				fmt.Fprintf(a.Stderr, "shipyard: output %d..%d was dropped (the buffer keeps the newest)\n", from, to)
			}})
		return err
	}
	off := *offset
	for {
		out, err := a.client.ProcessOutputFrom(ctx, id, pid, off, 0)
		if err != nil {
			return err
		}
		if out.Truncated && out.Offset > off {
			fmt.Fprintf(a.Stderr, "shipyard: output %d..%d was dropped (the buffer keeps the newest)\n", off, out.Offset)
		}
		if _, err := io.WriteString(a.Stdout, out.Output); err != nil {
			return err
		}
		if out.NextOffset <= off || out.Output == "" {
			return nil
		}
		off = out.NextOffset
	}
}

func (a *app) kill(ctx context.Context, args []string) error {
	fs := a.flags("kill")
	sig := fs.String("signal", "TERM", "")
	fs.StringVar(sig, "s", "TERM", "")
	remove := fs.Bool("rm", false, "")
	wait := fs.Duration("wait", 0, "")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("kill", pos, 2, "<id> <process>"); err != nil {
		return err
	}
	id, pid := pos[0], pos[1]
	if *remove {
		if err := a.client.RemoveProcess(ctx, id, pid); err != nil {
			return err
		}
		if a.json {
			return a.printJSON(map[string]string{"process_id": pid, "status": "removed"})
		}
		_, err := fmt.Fprintln(a.Stdout, pid)
		return err
	}
	p, err := a.client.SignalProcess(ctx, id, pid, strings.ToUpper(strings.TrimPrefix(*sig, "SIG")))
	if err != nil {
		return err
	}
	if *wait > 0 {
		if p, err = a.client.WaitProcess(ctx, id, pid, *wait); err != nil {
			return err
		}
	}
	if a.json {
		return a.printJSON(p)
	}
	_, err = fmt.Fprintf(a.Stdout, "%s %s\n", p.ProcessID, p.Status)
	return err
}

// execute runs one execution: whole (for --json, which prints only the
// result) or streamed to the terminal as it is produced.
func execute[R any](a *app, whole func() (*R, error), stream func() (*shipyard.Stream[R], error)) (*R, error) {
	if a.json {
		return whole()
	}
	s, err := stream()
	if err != nil {
		return nil, err
	}
	return s.Copy(a.Stdout, a.Stderr)
}
