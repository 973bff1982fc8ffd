package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

func (a *app) create(ctx context.Context, args []string) error {
	fs := a.flags("create")
	profile := fs.String("profile", "", "")
	ttl := fs.Int("ttl", -1, "")
	cargo := fs.String("cargo", "", "")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("create", pos, 0, "no arguments"); err != nil {
		return err
	}
	req := shipyard.CreateSandboxRequest{Profile: *profile}
	if *ttl >= 0 {
		req.TTL = ttl
	}
	if *cargo != "" {
		req.CargoID = cargo
	}
	sb, err := a.client.CreateSandbox(ctx, req)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(sb)
	}
	_, err = fmt.Fprintln(a.Stdout, sb.ID)
	return err
}

func sandboxRows(items []shipyard.Sandbox) [][]string {
	rows := make([][]string, 0, len(items))
	for _, s := range items {
		rows = append(rows, []string{s.ID, s.Status, s.Profile, s.CargoID, s.CreatedAt, deref(s.ExpiresAt, "never")})
	}
	return rows
}

var sandboxHeader = []string{"ID", "STATUS", "PROFILE", "CARGO", "CREATED", "EXPIRES"}

func (a *app) ls(ctx context.Context, args []string) error {
	fs := a.flags("ls")
	status := fs.String("status", "", "")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("ls", pos, 0, "no arguments"); err != nil {
		return err
	}
	items := []shipyard.Sandbox{}
	for s, err := range a.client.Sandboxes(ctx, shipyard.SandboxFilter{Status: *status, Limit: 200}) {
		if err != nil {
			return err
		}
		items = append(items, s)
	}
	if a.json {
		return a.printJSON(items)
	}
	return a.table(sandboxHeader, sandboxRows(items))
}

func (a *app) get(ctx context.Context, args []string) error {
	fs := a.flags("get")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("get", pos, 1, "<id>"); err != nil {
		return err
	}
	sb, err := a.client.GetSandbox(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(sb)
	}
	if err := a.table(sandboxHeader, sandboxRows([]shipyard.Sandbox{*sb})); err != nil {
		return err
	}
	if len(sb.Containers) > 0 {
		fmt.Fprintln(a.Stdout)
		var rows [][]string
		for _, c := range sb.Containers {
			rows = append(rows, []string{c.Name, c.RuntimeType, c.Status, deref(c.Version, "-"), deref(c.Healthy, "-")})
		}
		return a.table([]string{"CONTAINER", "RUNTIME", "STATUS", "VERSION", "HEALTHY"}, rows)
	}
	return nil
}

func (a *app) rm(ctx context.Context, args []string) error {
	fs := a.flags("rm")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("rm: want <id>...")
	}
	var firstErr error
	deleted := []string{}
	for _, id := range pos {
		if err := a.client.DeleteSandbox(ctx, id); err != nil {
			fmt.Fprintf(a.Stderr, "shipyard: rm %s: %s\n", id, describe(err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		deleted = append(deleted, id)
		if !a.json {
			fmt.Fprintln(a.Stdout, id)
		}
	}
	if a.json {
		if err := a.printJSON(map[string]any{"deleted": deleted}); err != nil {
			return err
		}
	}
	if firstErr != nil {
		return &exitError{exitCode(ctx, firstErr)}
	}
	return nil
}

func (a *app) ttl(ctx context.Context, args []string) error {
	fs := a.flags("ttl")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("ttl", pos, 2, "<id> <seconds>"); err != nil {
		return err
	}
	secs, err := strconv.Atoi(pos[1])
	if err != nil || secs <= 0 {
		return usagef("ttl: seconds must be a positive integer, not %q", pos[1])
	}
	sb, err := a.client.ExtendTTL(ctx, pos[0], secs)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(sb)
	}
	_, err = fmt.Fprintf(a.Stdout, "%s expires at %s\n", sb.ID, deref(sb.ExpiresAt, "never"))
	return err
}

func (a *app) stop(ctx context.Context, args []string) error {
	fs := a.flags("stop")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("stop", pos, 1, "<id>"); err != nil {
		return err
	}
	if err := a.client.StopSandbox(ctx, pos[0]); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]string{"id": pos[0], "status": "stopped"})
	}
	_, err = fmt.Fprintln(a.Stdout, pos[0])
	return err
}

func (a *app) profiles(ctx context.Context, args []string) error {
	fs := a.flags("profiles")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("profiles", pos, 0, "no arguments"); err != nil {
		return err
	}
	ps, err := a.client.ListProfiles(ctx, true)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(ps)
	}
	var rows [][]string
	for _, p := range ps {
		avail := "yes"
		if !p.Available {
			avail = "no: " + p.UnavailableReason
		}
		rows = append(rows, []string{p.ID, p.Image, strings.Join(p.Capabilities, ","), strconv.Itoa(p.IdleTimeout), avail, deref(p.Description, "")})
	}
	return a.table([]string{"PROFILE", "IMAGE", "CAPABILITIES", "IDLE TIMEOUT", "AVAILABLE", "DESCRIPTION"}, rows)
}

func (a *app) cargo(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("cargo: want ls, create or rm")
	}
	sub, args := args[0], args[1:]
	fs := a.flags("cargo " + sub)
	switch sub {
	case "ls":
		managed := fs.Bool("managed", false, "")
		pos, _, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs("cargo ls", pos, 0, "no arguments"); err != nil {
			return err
		}
		items := []shipyard.Cargo{}
		f := shipyard.CargoFilter{Managed: *managed, Limit: 200}
		for {
			page, err := a.client.ListCargos(ctx, f)
			if err != nil {
				return err
			}
			items = append(items, page.Items...)
			if page.NextCursor == nil || *page.NextCursor == "" {
				break
			}
			f.Cursor = *page.NextCursor
		}
		if a.json {
			return a.printJSON(items)
		}
		var rows [][]string
		for _, c := range items {
			rows = append(rows, []string{c.ID, strconv.FormatBool(c.Managed), deref(c.ManagedBySandboxID, "-"), c.Backend, strconv.Itoa(c.SizeLimitMB), c.CreatedAt})
		}
		return a.table([]string{"ID", "MANAGED", "SANDBOX", "BACKEND", "SIZE MB", "CREATED"}, rows)
	case "create":
		size := fs.Int("size", 0, "")
		pos, _, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs("cargo create", pos, 0, "no arguments"); err != nil {
			return err
		}
		c, err := a.client.CreateCargo(ctx, *size)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(c)
		}
		_, err = fmt.Fprintln(a.Stdout, c.ID)
		return err
	case "rm":
		pos, _, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs("cargo rm", pos, 1, "<id>"); err != nil {
			return err
		}
		if err := a.client.DeleteCargo(ctx, pos[0]); err != nil {
			return err
		}
		if a.json {
			return a.printJSON(map[string]any{"deleted": pos})
		}
		_, err = fmt.Fprintln(a.Stdout, pos[0])
		return err
	}
	return usagef("cargo: unknown subcommand %q (want ls, create or rm)", sub)
}
