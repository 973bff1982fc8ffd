package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

func (a *app) shell(ctx context.Context, args []string) error {
	fs := a.flags("shell")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("shell", pos, 1, "<id>"); err != nil {
		return err
	}
	in, _ := a.Stdin.(*os.File)
	tty := in != nil && term.IsTerminal(int(in.Fd()))
	var o shipyard.TerminalOptions
	if tty {
		if w, h, err := term.GetSize(int(in.Fd())); err == nil {
			o.Cols, o.Rows = w, h
		}
	}
	// On a terminal, Ctrl-C is a key for the remote shell (raw mode): the
	// session ends when the remote shell exits.
	tctx := ctx
	if tty {
		tctx = context.WithoutCancel(ctx)
	}
	t, err := a.client.OpenTerminal(tctx, pos[0], o)
	if err != nil {
		return err
	}
	defer t.Close()
	if tty {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("shell: raw mode: %w", err)
		}
		defer term.Restore(int(in.Fd()), old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(int(in.Fd())); err == nil {
					_ = t.Resize(w, h)
				}
			}
		}()
	}
	go func() {
		_, _ = io.Copy(t, a.Stdin)
		if !tty {
			// Piped input ended: let the shell finish what it was given.
			_, _ = t.Write([]byte("\x04"))
		}
	}()
	if _, err := io.Copy(a.Stdout, t); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("shell: %w", err)
	}
	return nil
}
