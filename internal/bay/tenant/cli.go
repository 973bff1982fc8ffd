package tenant

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// KeysUsage is the help of `bay keys`.
const KeysUsage = `usage: bay keys <command> [flags]

Manages API keys in the configured database (the same one Bay's replicas use;
a change applies to every replica at its next request).

  mint   -owner OWNER [-admin] [-label TEXT]   print a new key (shown only now)
  list   [-owner OWNER] [-revoked]             list keys (id, owner, admin, prefix, label, times)
  rotate KEY_ID                                print a key replacing KEY_ID (revoked at once)
  revoke KEY_ID                                revoke a key
`

// KeysCommand runs `bay keys args...`: the key is printed alone on stdout (for
// KEY=$(bay keys mint -owner alice)), everything else goes to stderr. It
// returns the process exit code (2: usage).
func (s *Service) KeysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, KeysUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	fs := flag.NewFlagSet("bay keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "", "owner of the keys")
	var err error
	switch args[0] {
	case "mint":
		admin := fs.Bool("admin", false, "an admin key (may call /v1/admin/*)")
		label := fs.String("label", "", "a note shown in listings")
		if code := parse(fs, args[1:], 0, stderr); code >= 0 {
			return code
		}
		var k *store.APIKey
		var key string
		if k, key, err = s.Mint(ctx, *owner, *admin, *label); err == nil {
			fmt.Fprintf(stderr, "minted %s for owner %q (admin: %v); the key is shown only now:\n", k.ID, k.Owner, k.Admin)
			fmt.Fprintln(stdout, key)
		}
	case "list":
		revoked := fs.Bool("revoked", false, "include revoked keys")
		if code := parse(fs, args[1:], 0, stderr); code >= 0 {
			return code
		}
		err = s.listAll(ctx, *owner, *revoked, stdout)
	case "rotate", "revoke":
		if code := parse(fs, args[1:], 1, stderr); code >= 0 {
			return code
		}
		id := fs.Arg(0)
		if args[0] == "rotate" {
			var k *store.APIKey
			var key string
			if k, key, err = s.Rotate(ctx, id); err == nil {
				fmt.Fprintf(stderr, "%s is revoked; its replacement %s (owner %q, admin: %v) is shown only now:\n", id, k.ID, k.Owner, k.Admin)
				fmt.Fprintln(stdout, key)
			}
		} else {
			var k *store.APIKey
			if k, err = s.Revoke(ctx, id); err == nil {
				fmt.Fprintf(stderr, "revoked %s (owner %q) at %s\n", k.ID, k.Owner, k.RevokedAt.Format(time.RFC3339))
			}
		}
	default:
		fmt.Fprintf(stderr, "bay keys: unknown command %q\n\n%s", args[0], KeysUsage)
		return 2
	}
	if err != nil {
		msg := err.Error()
		if e, ok := errs.As(err); ok {
			msg = e.Message
		}
		fmt.Fprintf(stderr, "bay keys %s: %s\n", args[0], msg)
		return 1
	}
	return 0
}

// parse parses flags and wants exactly nargs positional arguments; it returns
// -1 to go on, else the exit code.
func parse(fs *flag.FlagSet, args []string, nargs int, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != nargs {
		if nargs == 0 {
			fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		} else {
			fmt.Fprintf(stderr, "%s: expected KEY_ID (flags go before it)\n", fs.Name())
		}
		return 2
	}
	return -1
}

func (s *Service) listAll(ctx context.Context, owner string, revoked bool, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tADMIN\tPREFIX\tLABEL\tCREATED\tREVOKED")
	cursor := ""
	for {
		keys, next, err := s.List(ctx, owner, revoked, cursor, 500)
		if err != nil {
			return err
		}
		for _, k := range keys {
			rev := "-"
			if k.RevokedAt != nil {
				rev = k.RevokedAt.Format(time.RFC3339)
			}
			label := strings.ReplaceAll(k.Label, "\t", " ")
			if label == "" {
				label = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s…\t%s\t%s\t%s\n", k.ID, k.Owner, k.Admin, k.Prefix, label,
				k.CreatedAt.Format(time.RFC3339), rev)
		}
		if next == nil {
			return tw.Flush()
		}
		cursor = *next
	}
}
