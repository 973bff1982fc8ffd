package kernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/ship/boot"
)

// probeCode prints what user code can see of how the kernel was started.
const probeCode = `import sys, json, os
ip = get_ipython()
embed_module = __import__("IPython").embed.__module__
print(json.dumps({
    "argv": sys.argv[:2] + [os.path.basename(a) for a in sys.argv[2:]],  # the connection file's directory differs
    "path": sys.path,
    "cwd": os.getcwd(),
    "main_is_user_module": sys.modules["__main__"] is ip.user_module,
    "main_loader": type(sys.modules["__main__"].__loader__).__name__,
    "name": __name__,
    "shell": type(ip).__module__ + "." + type(ip).__name__,
    "kernel": type(ip.kernel).__module__ + "." + type(ip.kernel).__name__,
    "displayhook": type(sys.displayhook).__name__,
    "stdout": type(sys.stdout).__name__,
    "backend": os.environ.get("MPLBACKEND"),
    "history": ip.history_manager.enabled,
    "debugpy_none": sys.modules.get("debugpy", 0) is None,
    # (-m also has pkg_resources' VendorImporter, which debugpy's import pulls in)
    "meta_path": [n for n in (getattr(f, "__name__", type(f).__name__) for f in sys.meta_path) if n != "VendorImporter"],
    "gc": __import__("gc").isenabled(),
    "loaders": sorted({type(getattr(m, "__loader__", None)).__name__ for m in list(sys.modules.values())}),
    "module_types": sorted({type(m).__name__ for n, m in list(sys.modules.items()) if n.startswith(("IPython", "ipykernel", "jupyter", "traitlets", "zmq", "tornado"))}),
    "IPython.embed": embed_module,
    # the start's memo of gettext's searches and its unsynced history database end with it
    # each cached pattern is what re compiles now (the launcher fills the cache from its bundle)
    "re cache": all(p == __import__("re")._compiler.compile(k[1], k[2]) for k, p in list(__import__("re")._cache.items()) if type(k[1]) in (str, bytes)),
    "threads": sorted(t.name for t in __import__("threading").enumerate()),
    "gettext.find": __import__("gettext").find.__code__.co_filename,
    "sqlite3.connect": type(__import__("sqlite3").connect).__name__,
    "history synchronous": ip.history_manager.db.execute("PRAGMA synchronous").fetchone()[0],
    "history session recorded": ip.history_manager.db.execute("SELECT count(*) FROM sessions WHERE session=?", (ip.history_manager.session_number,)).fetchone()[0],
}, sort_keys=True))`

// deferredCode lists the modules that exist but were not executed yet.
const deferredCode = `import sys
print(sorted(n for n, m in list(sys.modules.items()) if type(m).__name__ == "Deferred"), "prompt_toolkit" in sys.modules)`

// wantDeferred is deferredCode's answer right after a start by the launcher.
const wantDeferred = "['IPython.terminal.embed', 'asyncio.format_helpers', 'asyncio.sslproto', 'asyncio.staggered', 'asyncio.trsock', " +
	"'bz2', 'cProfile', 'code', 'curses', 'dataclasses', 'dateutil.relativedelta', 'email.base64mime', 'email.errors', " +
	"'email.header', 'email.parser', 'email.quoprimime', 'ipaddress', 'jedi', 'jedi.api', 'jedi.api.classes', " +
	"'jedi.api.helpers', 'lzma', 'mimetypes', 'packaging', 'pexpect', 'pstats', 'pydoc', 'shlex', 'ssl', 'stack_data', " +
	"'zipfile'] False"

// parityCells use what the launcher defers or loads differently (the
// terminal shell, jedi, stack_data, IPython itself), and the usual outputs;
// each must give the same result whichever way the kernel was started.
var parityCells = []struct{ name, code string }{
	{"star import", "from IPython import *\nprint(sorted(k for k in dir() if not k.startswith('_') and k not in ('In', 'Out', 'exit', 'quit', 'get_ipython')))"},
	{"completion", `print(sorted(get_ipython().complete("", "import o", 8)[1]))`},
	{"jedi completion", "from IPython.core.completer import provisionalcompleter\nip = get_ipython()\nwith provisionalcompleter():\n    print(ip.Completer.use_jedi, sorted(c.text for c in ip.Completer.completions('import collections; collections.Ord', 35)))"},
	{"traceback", "def f(x):\n    return 1 / x\nf(0)"},
	{"chained traceback", "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('v') from e"},
	{"syntax error", "def ("},
	{"embed", "import IPython, IPython.terminal.embed as e\nprint(IPython.embed is e.embed, 'embed' in dir(IPython), e.InteractiveShellEmbed.__name__)"},
	{"from IPython import embed", "from IPython import embed\nprint(embed.__module__, embed.__name__)"},
	{"jedi module", "import jedi, jedi.api\nprint(jedi.settings.case_insensitive_completion, jedi.api.Interpreter is jedi.Interpreter, type(jedi.__loader__).__name__)"},
	{"stack_data module", "import stack_data\nprint(callable(stack_data.FrameInfo), type(stack_data).__name__, stack_data.__spec__.loader is stack_data.__loader__)"},
	{"html", "from IPython.display import HTML\nHTML('<b>hi</b>')"},
	{"plot", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"},
	{"magic", "%lsmagic"},
	{"cell magic", "%%bash\necho from bash"},
	{"shell", "!echo hi"},
	{"pinfo", "import json\n%pinfo json.dumps"},
	{"await", "import asyncio\nawait asyncio.sleep(0)\n'awaited'"},
	{"modules", "import sys\nprint(sorted(n for n in sys.modules if n.split('.')[0] in ('jedi', 'stack_data', 'prompt_toolkit', 'parso', 'IPython'))[:400])"},
	// deferred standard modules, used
	{"ssl", "import ssl, asyncio.sslproto\nprint(ssl.OPENSSL_VERSION[:7], ssl.create_default_context().verify_mode, asyncio.sslproto.SSLProtocol.__name__)"},
	{"pydoc", "import pydoc\nprint(pydoc.render_doc(len, renderer=pydoc.plaintext)[:60])"},
	{"prun", "%prun -q -l 0 sum(range(10))"},
	{"dataclass", "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int = 1\nP()"},
	{"zipfile", "import zipfile, io, bz2, lzma\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w', zipfile.ZIP_LZMA) as z:\n    z.writestr('a', 'x' * 100)\nprint(zipfile.ZipFile(b).read('a')[:3], len(bz2.compress(b'a')) > 0)"},
	// argparse's messages (the start remembers gettext's searches)
	{"magic usage error", "%history --no-such-option"},
	{"magic help", "%history?"},
	// the history database (not synced during the start)
	{"history", "x = 6 * 7\n%history -n 1-2"},
	{"history vars", "print(_i, len(In) > 2, _ih[1][:20], get_ipython().history_manager.session_number > 0)"},
}

// noise is what differs between two kernels whatever started them.
var noise = regexp.MustCompile(`0x[0-9a-f]+|ipykernel_\d+|/tmp/[^/\s]+/`)

// cellResults runs every cell and returns what each gave, noise removed.
func cellResults(t *testing.T, m *Manager, cells []struct{ name, code string }) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for _, c := range cells {
		r := exec1(t, m, c.code, 60*time.Second)
		r.ExecutionCount = nil
		r.Text = noise.ReplaceAllString(r.Text, "_")
		r.Error = noise.ReplaceAllString(r.Error, "_")
		out[c.name] = r
	}
	return out
}

// launcherStartLine waits for the line the launcher writes when the start
// ends and returns it.
func launcherStartLine(t *testing.T, m *Manager) string {
	t.Helper()
	var line string
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		line = m.p.startLine()
		return line != ""
	})
	return line
}

// buildBundle writes a bundle for kernels started in dir and returns a
// launcher that reads it.
func buildBundle(t *testing.T, dir string) (launcher, bundle string) {
	t.Helper()
	bundle = filepath.Join(t.TempDir(), "kernel-start.bundle")
	launcher = strings.Replace(Launcher, BundlePath, bundle, 1)
	if launcher == Launcher {
		t.Fatal("Launcher does not contain BundlePath")
	}
	cmd := exec.Command(debianPython, "-c", launcher, "-f", filepath.Join(t.TempDir(), "kernel.json"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SHIPYARD_KERNEL_BUNDLE_OUT="+bundle)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building the bundle: %v: %s", err, out)
	}
	if !strings.Contains(string(out), StartLinePrefix) {
		t.Fatalf("no start line in the output of the bundle build: %s", out)
	}
	return launcher, bundle
}

// TestLauncherMatchesModuleStart: a kernel started by Launcher (with and
// without its bundle) looks to user code like one started with python3 -m
// ipykernel_launcher, and behaves the same, also in what it defers (tab
// completion with jedi, tracebacks, IPython.embed, rich output, magics);
// debugpy stays importable.
func TestLauncherMatchesModuleStart(t *testing.T) {
	base := testConfig(t)
	launcherB, _ := buildBundle(t, base.Dir)
	type run struct {
		probe, deferred, line string
		cells                 map[string]Result
	}
	start := func(argv []string) run {
		cfg := base
		cfg.Argv = argv
		m := startManager(t, cfg)
		var r run
		r.deferred = exec1(t, m, deferredCode, 30*time.Second).Text
		res := exec1(t, m, probeCode, 30*time.Second)
		if !res.Success {
			t.Fatalf("%.40q: %+v", argv, res)
		}
		r.probe = res.Text
		r.cells = cellResults(t, m, parityCells)
		if argv[1] == "-c" {
			r.line = launcherStartLine(t, m)
		}
		return r
	}
	module := start([]string{debianPython, "-m", "ipykernel_launcher", "-f", "{connection_file}"})
	plain := start([]string{debianPython, "-c", Launcher, "-f", "{connection_file}"})
	bundled := start([]string{debianPython, "-c", launcherB, "-f", "{connection_file}"})

	if !strings.Contains(module.probe, "ipykernel_launcher.py") || !strings.Contains(module.probe, `"debugpy_none": false`) ||
		!strings.Contains(module.probe, `"SourceFileLoader"`) {
		t.Fatalf("probe: %s", module.probe)
	}
	for _, l := range []struct {
		name string
		run  run
		line *regexp.Regexp
	}{
		{"Launcher", plain, regexp.MustCompile(`^\d+ ms, bundle none \(0 modules\), 31 deferred$`)},
		{"Launcher with a bundle", bundled, regexp.MustCompile(`^\d+ ms, bundle used \([3-9]\d\d modules\), 31 deferred$`)},
	} {
		// sys.argv[0] is ipykernel_launcher's file in both.
		if l.run.probe != module.probe {
			t.Errorf("%s: user code sees a different kernel:\n-m:  %s\nnow: %s", l.name, module.probe, l.run.probe)
		}
		if l.run.deferred != wantDeferred {
			t.Errorf("%s: deferred at start: %s, want %s", l.name, l.run.deferred, wantDeferred)
		}
		if !l.line.MatchString(l.run.line) {
			t.Errorf("%s: start line %q does not match %s", l.name, l.run.line, l.line)
		}
		for _, c := range parityCells {
			if got, want := l.run.cells[c.name], module.cells[c.name]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: cell %s:\n-m:  %+v\nnow: %+v", l.name, c.name, want, got)
			}
		}
	}
	if module.deferred != "[] True" {
		t.Errorf("-m start: %s", module.deferred)
	}
	// The cells ran as meant: they used what was deferred.
	for name, want := range map[string]string{
		"jedi completion":           "True ['OrderedDict']",
		"embed":                     "True True InteractiveShellEmbed",
		"from IPython import embed": "IPython.terminal.embed embed",
		"jedi module":               "False True SourceFileLoader",
		"stack_data module":         "True module True",
		"shell":                     "hi",
		"cell magic":                "from bash",
		"await":                     "'awaited'",
		"ssl":                       "OpenSSL 2 SSLProtocol",
		"dataclass":                 "P(x=1)",
		"zipfile":                   "b'xxx' True",
	} {
		if got := module.cells[name]; got.Text != want || !got.Success {
			t.Errorf("cell %s: %+v, want %q", name, got, want)
		}
	}
	if r := module.cells["traceback"]; r.Success || !strings.Contains(r.Error, "ZeroDivisionError") || !strings.Contains(r.Error, "division by zero") {
		t.Errorf("traceback: %+v", r)
	}
	if r := module.cells["magic usage error"]; r.Success || !strings.Contains(r.Error, "unrecognized arguments: --no-such-option") {
		t.Errorf("magic usage error: %+v", r)
	}
	if r := module.cells["history"]; !strings.Contains(r.Text, "1:") || !strings.Contains(r.Text, "2:") {
		t.Errorf("history: %+v", r)
	}
	if r := module.cells["plot"]; len(r.Images) != 1 {
		t.Errorf("plot: %+v", r)
	}
	if r := module.cells["html"]; len(r.Data["text/html"]) != 1 {
		t.Errorf("html: %+v", r)
	}

	if !strings.Contains(Launcher, "ipykernel_launcher") {
		t.Fatal("Ship recognizes the kernel's process by ipykernel_launcher in its command line")
	}
	cfg := base
	cfg.Argv = []string{debianPython, "-c", Launcher, "-f", "{connection_file}"}
	m := startManager(t, cfg)
	if res := exec1(t, m, "import debugpy, ipykernel.ipkernel as k; print(bool(debugpy.__version__), k._is_debugpy_available)", 30*time.Second); res.Text != "True False" {
		t.Fatalf("debugpy from user code: %+v", res)
	}
	if res := exec1(t, m, "%time x = 6*7\nx", 30*time.Second); !res.Success || !strings.Contains(res.Text, "42") {
		t.Fatalf("magics: %+v", res)
	}
}

// TestLauncherBundleChecks: a bundle that does not match what the start
// would read from the disk is not used, and the kernel starts as usual.
func TestLauncherBundleChecks(t *testing.T) {
	base := testConfig(t)
	launcher, bundle := buildBundle(t, base.Dir)
	corrupt := filepath.Join(t.TempDir(), "corrupt.bundle")
	if err := os.WriteFile(corrupt, []byte("not a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A bundle whose record of a directory's mtime no longer matches it.
	staleDir := filepath.Join(t.TempDir(), "stale.bundle")
	rewrite := `import marshal, sys
with open(sys.argv[1], "rb") as f:
    head = marshal.load(f)
    rest = f.read()
d = sorted(head["dirs"])[-1]
head["dirs"][d] -= 1
with open(sys.argv[2], "wb") as f:
    marshal.dump(head, f)
    f.write(rest)
print(d, end="")`
	out, err := exec.Command(debianPython, "-c", rewrite, bundle, staleDir).CombinedOutput()
	if err != nil {
		t.Fatalf("rewriting the bundle: %v: %s", err, out)
	}
	changedDir := string(out)
	// A bundle whose code ends early: the modules past the end come from the disk.
	whole, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.bundle")
	if err := os.WriteFile(truncated, whole[:len(whole)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	shadowed := t.TempDir()
	launcherS, _ := buildBundle(t, shadowed)
	// A namespace portion named like a bundled package: the path finder
	// would look at it, so the bundle is not used (the kernel is unaffected).
	if err := os.Mkdir(filepath.Join(shadowed, "traitlets"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, launcher, dir, want string
	}{
		{"matching", launcher, base.Dir, "bundle used"},
		{"another working directory", launcher, t.TempDir(), "bundle stale (python or sys.path)"},
		{"shadowed in the working directory", launcherS, shadowed, "bundle shadowed (traitlets)"},
		{"corrupt", strings.Replace(Launcher, BundlePath, corrupt, 1), base.Dir, "bundle unreadable"},
		{"code ends early", strings.Replace(Launcher, BundlePath, truncated, 1), base.Dir, "bundle used"},
		{"a directory changed", strings.Replace(Launcher, BundlePath, staleDir, 1), base.Dir, "bundle stale (" + changedDir + ")"},
		{"missing", strings.Replace(Launcher, BundlePath, bundle+".missing", 1), base.Dir, "bundle none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Dir = tt.dir
			cfg.Argv = []string{debianPython, "-c", tt.launcher, "-f", "{connection_file}"}
			m := startManager(t, cfg)
			if line := launcherStartLine(t, m); !strings.Contains(line, tt.want) {
				t.Errorf("start line %q, want %q", line, tt.want)
			}
			if res := exec1(t, m, "import traitlets, os\nprint(os.path.dirname(traitlets.__file__) != os.getcwd() + '/traitlets', 6*7)", 30*time.Second); res.Text != "True 42" {
				t.Errorf("kernel: %+v", res)
			}
		})
	}
}

// TestLauncherStartFiles: with SHIPYARD_KERNEL_FILES_OUT, a start (served
// from its bundle) writes the files and directories it read, in the order it
// needed them, which boot.Prefetch reads back: the interpreter first, the
// directories of sys.path, the extension modules with the libraries they
// load; not the code the bundle serves, nor the workspace or temporary files.
func TestLauncherStartFiles(t *testing.T) {
	base := testConfig(t)
	launcher, _ := buildBundle(t, base.Dir)
	list := filepath.Join(t.TempDir(), "kernel-start.files")
	cmd := exec.Command(debianPython, "-c", launcher, "-f", filepath.Join(t.TempDir(), "kernel.json"))
	cmd.Dir = base.Dir
	cmd.Env = append(os.Environ(), "SHIPYARD_KERNEL_FILES_OUT="+list)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bundle used") {
		t.Fatalf("recording the start's files: %v: %s", err, out)
	}
	b, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	exe, err := filepath.EvalSymlinks(debianPython)
	if err != nil {
		t.Fatal(err)
	}
	index := map[string]int{}
	for i, l := range lines {
		kind, rest, _ := strings.Cut(l, " ")
		p := rest
		if kind == "f" {
			size, path, _ := strings.Cut(rest, " ")
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() || strconv.FormatInt(fi.Size(), 10) != size {
				t.Errorf("line %q: %v %v", l, fi, err)
			}
			p = path
		} else if fi, err := os.Stat(p); kind != "d" || err != nil || !fi.IsDir() {
			t.Errorf("line %q: %v", l, err)
		}
		if _, dup := index[p]; dup {
			t.Errorf("%s listed twice", p)
		}
		index[p] = i
		// The workspace, temporary files, /proc; code the bundle serves.
		for _, bad := range []string{base.Dir, "/tmp/", "/proc/", "/dev/"} {
			if strings.HasPrefix(p, bad) {
				t.Errorf("%s should not be listed", p)
			}
		}
		if strings.Contains(p, "/traitlets/") || strings.Contains(p, "/ipykernel/") {
			t.Errorf("%s should not be listed: the bundle serves it", p)
		}
	}
	if !strings.HasPrefix(lines[0], "f ") || !strings.HasSuffix(lines[0], " "+exe) {
		t.Errorf("first line %q, want the interpreter %s", lines[0], exe)
	}
	find := func(sub string) int {
		for p, i := range index {
			if strings.Contains(p, sub) {
				return i
			}
		}
		t.Errorf("nothing like %q listed", sub)
		return -1
	}
	if i, j := find("/zmq/backend/cython/_device."), find("/libzmq.so"); i > j {
		t.Errorf("libzmq (line %d) before the extension module that loads it (line %d)", j, i)
	}
	if _, ok := index["/usr/lib/python3/dist-packages"]; !ok {
		t.Error("dist-packages not listed")
	}
	st, err := boot.Prefetch(list)
	if err != nil || st.Skipped != 0 || st.Files+st.Dirs != len(lines) || st.Bytes == 0 {
		t.Errorf("boot.Prefetch: %+v, %v (%d lines)", st, err, len(lines))
	}
}
