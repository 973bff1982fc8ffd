// Package command parses one line of the browser command language (the
// agent-browser language that Shipyard-Neo's agents speak, summarised in
// shared/spec/browser-commands.md) into a checked Line. It never runs
// anything: words are split like a POSIX shell splits them (quotes group,
// backslash escapes) and nothing else a shell does happens (no variables,
// globs, pipes or redirections; `|` or `>` are ordinary words).
package command

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/kballard/go-shellquote"
)

// Exit codes of a command.
const (
	ExitOK      = 0   // the command did what it says
	ExitFailed  = 1   // it ran and failed (element not found, page error, ...)
	ExitUsage   = 2   // the line is not a valid command: nothing ran
	ExitTimeout = 124 // the call's timeout ran out (like timeout(1))
)

// MaxLineBytes bounds one command line.
const MaxLineBytes = 1 << 20

// Line is one parsed command.
type Line struct {
	JSON  bool   // --json: structured output
	Proxy string // --proxy URL: the browser uses this proxy
	// Name is the canonical command name (aliases resolved: goto → open).
	Name string
	// Args are the positional words after the name (and after the
	// sub-command, for commands that have one: Sub holds it).
	Sub   string
	Args  []string
	Flags map[string]string // flag name without dashes → value ("" for switches)
}

// Has reports whether the flag was given.
func (l Line) Has(flag string) bool { _, ok := l.Flags[flag]; return ok }

// Flag returns the flag's value ("" when absent).
func (l Line) Flag(flag string) string { return l.Flags[flag] }

// Arg returns positional argument i or "".
func (l Line) Arg(i int) string {
	if i < len(l.Args) {
		return l.Args[i]
	}
	return ""
}

// UsageError is a line that is not a valid command. Its message says what to
// do instead.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// IsUsage reports whether err is a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// flagSpec says whether a flag takes a value, and its other spellings.
type flagSpec struct {
	value   bool
	aliases []string
}

// spec describes one command (or one sub-command).
type spec struct {
	min, max int // positional arguments; max < 0: unbounded
	flags    map[string]flagSpec
	usage    string
	// free: words starting with '-' that are not flags of the command are
	// text (fill @e1 "-5", eval -1), not errors.
	free bool
	subs map[string]spec // sub-command → spec; the sub-command is the first word
	// defaultSub is used when the first word is not a sub-command (tab 2,
	// cookies, storage local).
	defaultSub string
}

var noFlags = map[string]flagSpec{}

// aliases map other names to the canonical one.
var aliases = map[string]string{
	"goto": "open", "navigate": "open",
	"key": "press", "scrollinto": "scrollintoview",
	"js": "eval", "evaluate": "eval",
	"tabs": "tab", "cookie": "cookies",
}

var refOnly = spec{min: 1, max: 1, flags: noFlags}

var specs = map[string]spec{
	"open":    {min: 1, max: 1, flags: noFlags, usage: `open <url>   e.g. open http://web:8000/login`},
	"back":    {flags: noFlags, usage: "back"},
	"forward": {flags: noFlags, usage: "forward"},
	"reload":  {flags: noFlags, usage: "reload"},
	"close":   {flags: noFlags, usage: "close   (closes the browser; the next command starts it again)"},
	"snapshot": {max: 1, usage: `snapshot [-i] [-C] [-s "<css>"] [@ref]`, flags: map[string]flagSpec{
		"i": {aliases: []string{"interactive"}}, "C": {aliases: []string{"cursor"}},
		"s": {value: true, aliases: []string{"selector", "scope"}}, "c": {aliases: []string{"compact"}},
		"d": {value: true, aliases: []string{"depth"}},
	}},
	"click":          withUsage(refOnly, "click <ref>   e.g. click @e3"),
	"dblclick":       withUsage(refOnly, "dblclick <ref>"),
	"hover":          withUsage(refOnly, "hover <ref>"),
	"focus":          withUsage(refOnly, "focus <ref>"),
	"check":          withUsage(refOnly, "check <ref>"),
	"uncheck":        withUsage(refOnly, "uncheck <ref>"),
	"scrollintoview": withUsage(refOnly, "scrollintoview <ref>"),
	"fill":           {min: 2, max: 2, flags: noFlags, free: true, usage: `fill <ref> "<text>"   (clears the field, then types)`},
	"type":           {min: 2, max: 2, flags: noFlags, free: true, usage: `type <ref> "<text>"   (types at the end of the field)`},
	"select":         {min: 2, max: -1, flags: noFlags, free: true, usage: `select <ref> "<option>" ["<option>" ...]`},
	"press":          {min: 1, max: 1, flags: noFlags, usage: "press <Key>   e.g. press Enter, press Control+a, press Tab"},
	"scroll":         {min: 1, max: 2, flags: noFlags, usage: "scroll <up|down|left|right> [px]   e.g. scroll down 500"},
	"drag":           {min: 2, max: 2, flags: noFlags, usage: "drag <ref> <ref>"},
	"upload":         {min: 2, max: -1, flags: noFlags, usage: "upload <ref> <path in /workspace> [<path> ...]"},
	"get": {usage: "get text|html|value|attr|title|url|count|box|styles ...", subs: map[string]spec{
		"text":   {min: 1, max: 1, flags: noFlags, usage: "get text <ref|body|css>"},
		"html":   {min: 1, max: 1, flags: noFlags, usage: "get html <ref|body|css>"},
		"value":  {min: 1, max: 1, flags: noFlags, usage: "get value <ref>"},
		"attr":   {min: 2, max: 2, flags: noFlags, usage: "get attr <ref> <name>"},
		"title":  {flags: noFlags, usage: "get title"},
		"url":    {flags: noFlags, usage: "get url"},
		"count":  {min: 1, max: 1, flags: noFlags, usage: `get count "<css>"`},
		"box":    {min: 1, max: 1, flags: noFlags, usage: "get box <ref>"},
		"styles": {min: 1, max: 1, flags: noFlags, usage: "get styles <ref>"},
	}},
	"is": {usage: "is visible|enabled|checked <ref>", subs: map[string]spec{
		"visible": withUsage(refOnly, "is visible <ref>"),
		"enabled": withUsage(refOnly, "is enabled <ref>"),
		"checked": withUsage(refOnly, "is checked <ref>"),
	}},
	"wait": {max: 1, usage: `wait <ref> | wait <ms> | wait --load load|domcontentloaded|networkidle | wait --url "<glob>" | wait --text "<text>" | wait --fn "<js expr>"`,
		flags: map[string]flagSpec{"load": {value: true}, "url": {value: true, aliases: []string{"u"}},
			"text": {value: true, aliases: []string{"t"}}, "fn": {value: true, aliases: []string{"f"}},
			"state": {value: true}}},
	"screenshot": {max: 1, usage: "screenshot [--full] [path in /workspace]   e.g. screenshot /workspace/page.png",
		flags: map[string]flagSpec{"full": {aliases: []string{"f", "full-page"}}}},
	"pdf":  {min: 1, max: 1, flags: noFlags, usage: "pdf <path in /workspace>   e.g. pdf /workspace/page.pdf"},
	"eval": {min: 1, max: -1, flags: noFlags, free: true, usage: `eval <js expression>   e.g. eval "document.title"`},
	"find": {usage: `find text|label|role|placeholder|testid|alt|title|first|last|nth ... <action> [value]   e.g. find role button click --name "Log In"`,
		subs: map[string]spec{
			"text":        findSpec(`find text "<text>" <action> [value] [--exact]`),
			"label":       findSpec(`find label "<label>" <action> [value] [--exact]`),
			"role":        findSpec(`find role <role> <action> [value] [--name "<name>"] [--exact]`),
			"placeholder": findSpec(`find placeholder "<text>" <action> [value] [--exact]`),
			"testid":      findSpec(`find testid "<id>" <action> [value]`),
			"alt":         findSpec(`find alt "<text>" <action> [value] [--exact]`),
			"title":       findSpec(`find title "<text>" <action> [value] [--exact]`),
			"first":       findSpec(`find first "<css>" <action> [value]`),
			"last":        findSpec(`find last "<css>" <action> [value]`),
			"nth":         {min: 3, max: 4, free: true, flags: noFlags, usage: `find nth <n> "<css>" <action> [value]   (n from 0)`},
		}},
	"tab": {usage: "tab | tab new [url] | tab <n> | tab close [n]", defaultSub: "select", subs: map[string]spec{
		"list":   {flags: noFlags, usage: "tab list"},
		"new":    {max: 1, flags: noFlags, usage: "tab new [url]"},
		"close":  {max: 1, flags: noFlags, usage: "tab close [n]"},
		"select": {max: 1, flags: noFlags, usage: "tab <n>   (n from the list `tab` prints)"},
	}},
	"window": {usage: "window new [url]", subs: map[string]spec{
		"new": {max: 1, flags: noFlags, usage: "window new [url]"},
	}},
	"frame": {min: 1, max: 1, flags: noFlags, usage: `frame "<css of an iframe>" | frame main`},
	"dialog": {usage: "dialog accept [text] | dialog dismiss | dialog", defaultSub: "status", subs: map[string]spec{
		"accept":  {max: 1, free: true, flags: noFlags, usage: "dialog accept [prompt text]"},
		"dismiss": {flags: noFlags, usage: "dialog dismiss"},
		"status":  {flags: noFlags, usage: "dialog"},
	}},
	"cookies": {usage: "cookies | cookies set <name> <value> [--url u] [--domain d] [--path p] | cookies clear", defaultSub: "get", subs: map[string]spec{
		"get": {flags: noFlags, usage: "cookies"},
		"set": {min: 2, max: 2, free: true, usage: "cookies set <name> <value> [--url u] [--domain d] [--path p] [--secure] [--httponly]",
			flags: map[string]flagSpec{"url": {value: true}, "domain": {value: true}, "path": {value: true},
				"secure": {}, "httponly": {aliases: []string{"httpOnly"}}}},
		"clear": {flags: noFlags, usage: "cookies clear"},
	}},
	"storage": {usage: "storage local|session [key] | storage local set <k> <v> | storage local clear", subs: map[string]spec{
		"local":   {max: 3, free: true, flags: noFlags, usage: "storage local [key] | storage local set <k> <v> | storage local clear"},
		"session": {max: 3, free: true, flags: noFlags, usage: "storage session [key] | storage session set <k> <v> | storage session clear"},
	}},
	"network": {usage: "network route <url-glob> [--abort | --body '<json>'] | network unroute [url-glob] | network requests [--filter <text>] [--clear]", subs: map[string]spec{
		"route": {min: 1, max: 1, usage: "network route <url-glob> [--abort | --body '<json>'] [--status n] [--content-type t]",
			flags: map[string]flagSpec{"abort": {}, "body": {value: true}, "status": {value: true}, "content-type": {value: true}}},
		"unroute":  {max: 1, flags: noFlags, usage: "network unroute [url-glob]"},
		"requests": {usage: "network requests [--filter <text>] [--clear]", flags: map[string]flagSpec{"filter": {value: true}, "clear": {}}},
	}},
	"state": {usage: "state save <path> | state load <path>", subs: map[string]spec{
		"save": {min: 1, max: 1, flags: noFlags, usage: "state save <path in /workspace>"},
		"load": {min: 1, max: 1, flags: noFlags, usage: "state load <path in /workspace>"},
	}},
	"help": {max: 1, flags: noFlags, usage: "help [command]"},
}

func withUsage(s spec, usage string) spec { s.usage = usage; return s }

func findSpec(usage string) spec {
	return spec{min: 2, max: 3, free: true, usage: usage,
		flags: map[string]flagSpec{"name": {value: true, aliases: []string{"n"}}, "exact": {}}}
}

// Names lists the canonical command names, sorted.
func Names() []string {
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Usage returns the usage text of a command (canonical or alias), or "".
func Usage(name string) string {
	if c, ok := aliases[name]; ok {
		name = c
	}
	s, ok := specs[name]
	if !ok {
		return ""
	}
	if len(s.subs) == 0 {
		return s.usage
	}
	lines := []string{s.usage}
	keys := make([]string, 0, len(s.subs))
	for k := range s.subs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lines = append(lines, "  "+s.subs[k].usage)
	}
	return strings.Join(lines, "\n")
}

// Split splits a command line into words like a POSIX shell (no expansion).
func Split(line string) ([]string, error) {
	if len(line) > MaxLineBytes {
		return nil, usagef("command line too long (%d bytes; at most %d)", len(line), MaxLineBytes)
	}
	if !utf8.ValidString(line) {
		return nil, usagef("command line is not valid UTF-8")
	}
	if strings.ContainsRune(line, 0) {
		return nil, usagef("command line contains a NUL byte")
	}
	words, err := shellquote.Split(line)
	if err != nil {
		return nil, usagef("cannot split the command line: %s. Close every quote; inside single quotes nothing is special, write a single quote as '\\''", strings.ToLower(err.Error()))
	}
	return words, nil
}

// Parse parses one command line.
func Parse(line string) (Line, error) {
	words, err := Split(line)
	if err != nil {
		return Line{}, err
	}
	return ParseWords(words)
}

// ParseWords parses an already split command.
func ParseWords(words []string) (Line, error) {
	var l Line
	// Global flags come first.
	for len(words) > 0 && strings.HasPrefix(words[0], "-") {
		w := words[0]
		switch {
		case w == "--json":
			l.JSON = true
			words = words[1:]
		case w == "--proxy":
			if len(words) < 2 {
				return Line{}, usagef("--proxy needs a URL, e.g. --proxy http://proxy:3128 open http://example.test")
			}
			l.Proxy = words[1]
			words = words[2:]
		case strings.HasPrefix(w, "--proxy="):
			l.Proxy = strings.TrimPrefix(w, "--proxy=")
			words = words[1:]
		case w == "--session" || w == "--profile" || strings.HasPrefix(w, "--session=") || strings.HasPrefix(w, "--profile="):
			return Line{}, usagef("%s is not accepted: the runtime binds each sandbox to its own browser session and profile (/workspace/.browser/profile); drop the flag", w)
		default:
			return Line{}, usagef("unknown global flag %q (global flags: --json, --proxy URL); the command name comes next, e.g. open <url>", w)
		}
	}
	if l.Proxy != "" {
		if err := checkProxy(l.Proxy); err != nil {
			return Line{}, err
		}
	}
	if len(words) == 0 {
		return Line{}, usagef("empty command: give a command such as `open <url>` or `snapshot -i` (`help` lists all)")
	}
	name := words[0]
	if c, ok := aliases[name]; ok {
		name = c
	}
	s, ok := specs[name]
	if !ok {
		return Line{}, usagef("unknown command %q. Commands: %s. Run `help <command>` for its usage", words[0], strings.Join(Names(), ", "))
	}
	l.Name = name
	rest := words[1:]
	if len(s.subs) > 0 {
		sub := ""
		if len(rest) > 0 {
			if _, ok := s.subs[rest[0]]; ok {
				sub = rest[0]
				rest = rest[1:]
			}
		}
		if sub == "" {
			switch {
			case name == "tab" && len(rest) == 0:
				sub = "list"
			case s.defaultSub != "" && (len(rest) == 0 || !strings.HasPrefix(rest[0], "-")):
				sub = s.defaultSub
			default:
				got := "nothing"
				if len(rest) > 0 {
					got = fmt.Sprintf("%q", rest[0])
				}
				return Line{}, usagef("%s needs a sub-command, got %s. Usage:\n%s", name, got, Usage(name))
			}
		}
		l.Sub = sub
		s = s.subs[sub]
	}
	args, flags, err := parseArgs(rest, s)
	if err != nil {
		return Line{}, usagef("%s: %v. Usage: %s", l.display(), err, s.usage)
	}
	if len(args) < s.min || (s.max >= 0 && len(args) > s.max) {
		return Line{}, usagef("%s: %s. Usage: %s", l.display(), countMsg(len(args), s.min, s.max), s.usage)
	}
	l.Args, l.Flags = args, flags
	if _, ok := flags["json"]; ok {
		l.JSON = true
		delete(flags, "json")
	}
	if err := check(l); err != nil {
		return Line{}, usagef("%s: %v. Usage: %s", l.display(), err, s.usage)
	}
	return l, nil
}

func (l Line) display() string {
	if l.Sub != "" && l.Sub != "select" && l.Sub != "get" && l.Sub != "status" {
		return l.Name + " " + l.Sub
	}
	return l.Name
}

func countMsg(n, lo, hi int) string {
	switch {
	case hi == 0:
		return fmt.Sprintf("takes no arguments, got %d", n)
	case n < lo && lo == hi:
		return fmt.Sprintf("needs %d argument(s), got %d", lo, n)
	case n < lo:
		return fmt.Sprintf("needs at least %d argument(s), got %d", lo, n)
	default:
		return fmt.Sprintf("takes at most %d argument(s), got %d (quote text that contains spaces)", hi, n)
	}
}

// parseArgs separates positional words from flags. `--` ends the flags.
func parseArgs(words []string, s spec) ([]string, map[string]string, error) {
	flags := map[string]string{}
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			args = append(args, words[i+1:]...)
			break
		}
		if len(w) < 2 || w[0] != '-' || isNumber(w) {
			args = append(args, w)
			continue
		}
		raw := strings.TrimLeft(w, "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(raw, "="); ok {
			raw, value, hasValue = k, v, true
		}
		name, fs, ok := lookupFlag(s, raw)
		if !ok {
			if raw == "json" {
				flags["json"] = ""
				continue
			}
			if s.free {
				args = append(args, w)
				continue
			}
			return nil, nil, fmt.Errorf("unknown flag %q", w)
		}
		if fs.value {
			if !hasValue {
				if i+1 >= len(words) {
					return nil, nil, fmt.Errorf("flag %s needs a value", w)
				}
				i++
				value = words[i]
			}
		} else if hasValue {
			return nil, nil, fmt.Errorf("flag --%s takes no value", name)
		}
		flags[name] = value
	}
	return args, flags, nil
}

func lookupFlag(s spec, raw string) (string, flagSpec, bool) {
	if fs, ok := s.flags[raw]; ok {
		return raw, fs, true
	}
	for name, fs := range s.flags {
		if slices.Contains(fs.aliases, raw) {
			return name, fs, true
		}
	}
	return "", flagSpec{}, false
}

func isNumber(w string) bool {
	if len(w) < 2 || w[0] != '-' {
		return false
	}
	for _, r := range w[1:] {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// check validates what the spec table cannot express.
func check(l Line) error {
	switch l.Name {
	case "scroll":
		if !slices.Contains([]string{"up", "down", "left", "right"}, l.Arg(0)) {
			return fmt.Errorf("direction must be up, down, left or right, got %q", l.Arg(0))
		}
		if len(l.Args) == 2 {
			if _, err := ParseInt(l.Arg(1), 1, 1_000_000); err != nil {
				return fmt.Errorf("pixels: %v", err)
			}
		}
	case "wait":
		n := len(l.Args)
		for _, f := range []string{"load", "url", "text", "fn"} {
			if l.Has(f) {
				n++
			}
		}
		if n != 1 {
			return errors.New("give exactly one of <ref>, <ms>, --load, --url, --text, --fn")
		}
		if v := l.Flag("load"); l.Has("load") && !slices.Contains([]string{"load", "domcontentloaded", "networkidle"}, v) {
			return fmt.Errorf("--load must be load, domcontentloaded or networkidle, got %q", v)
		}
	case "find":
		if l.Sub == "nth" {
			if _, err := ParseInt(l.Arg(0), -1_000_000, 1_000_000); err != nil {
				return fmt.Errorf("n: %v", err)
			}
		}
	case "tab":
		if l.Sub == "select" || (l.Sub == "close" && len(l.Args) == 1) {
			if _, err := ParseInt(l.Arg(0), 0, 1_000_000); err != nil {
				return fmt.Errorf("tab number: %v (run `tab` to list the tabs)", err)
			}
		}
	case "storage":
		switch l.Arg(0) {
		case "set":
			if len(l.Args) != 3 {
				return errors.New("set needs a key and a value")
			}
		case "clear":
			if len(l.Args) != 1 {
				return errors.New("clear takes no more arguments")
			}
		default:
			if len(l.Args) > 1 {
				return errors.New("give one key, or set <k> <v>, or clear")
			}
		}
	case "network":
		if l.Sub == "route" && l.Has("abort") && l.Has("body") {
			return errors.New("--abort and --body exclude each other")
		}
		if l.Has("status") {
			if _, err := ParseInt(l.Flag("status"), 100, 599); err != nil {
				return fmt.Errorf("--status: %v", err)
			}
		}
	case "snapshot":
		if l.Has("d") {
			if _, err := ParseInt(l.Flag("d"), 1, 1000); err != nil {
				return fmt.Errorf("--depth: %v", err)
			}
		}
	}
	return nil
}

// ParseInt parses a decimal integer within [lo, hi].
func ParseInt(s string, lo, hi int) (int, error) {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != strings.TrimPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

// checkProxy accepts "off"/"none" or a proxy URL with a host.
func checkProxy(p string) error {
	if p == "off" || p == "none" {
		return nil
	}
	u, err := url.Parse(p)
	if err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "socks4", "socks5"}, u.Scheme) || strings.ContainsAny(p, " ,;") {
		return usagef("--proxy %q is not a proxy URL: use http://host:port, https://, socks4:// or socks5:// (or off)", p)
	}
	return nil
}
