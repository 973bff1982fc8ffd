package kernel

import (
	"strings"
	"testing"
	"time"
)

// probeCode prints what user code can see of how the kernel was started.
const probeCode = `import sys, json, os
ip = get_ipython()
print(json.dumps({
    "argv": sys.argv[:2] + [os.path.basename(a) for a in sys.argv[2:]],  # the connection file's directory differs
    "path": sys.path,
    "cwd": os.getcwd(),
    "main_is_user_module": sys.modules["__main__"] is ip.user_module,
    "name": __name__,
    "shell": type(ip).__module__ + "." + type(ip).__name__,
    "kernel": type(ip.kernel).__module__ + "." + type(ip.kernel).__name__,
    "displayhook": type(sys.displayhook).__name__,
    "stdout": type(sys.stdout).__name__,
    "backend": os.environ.get("MPLBACKEND"),
    "history": ip.history_manager.enabled,
    "debugpy_none": sys.modules.get("debugpy", 0) is None,
}, sort_keys=True))`

// TestLauncherMatchesModuleStart: the kernel DefaultArgv (Launcher) starts
// looks the same to user code as one started with python3 -m
// ipykernel_launcher, and debugpy stays importable.
func TestLauncherMatchesModuleStart(t *testing.T) {
	base := testConfig(t)
	probe := func(argv []string) string {
		cfg := base
		cfg.Argv = argv
		m := startManager(t, cfg)
		res := exec1(t, m, probeCode, 30*time.Second)
		if !res.Success {
			t.Fatalf("%v: %+v", argv, res)
		}
		return res.Text
	}
	module := probe([]string{debianPython, "-m", "ipykernel_launcher", "-f", "{connection_file}"})
	launcher := probe([]string{debianPython, "-c", Launcher, "-f", "{connection_file}"})
	// sys.argv[0] is ipykernel_launcher's file in both.
	if module != launcher {
		t.Fatalf("user code sees a different kernel:\n-m:       %s\nLauncher: %s", module, launcher)
	}
	if !strings.Contains(launcher, "ipykernel_launcher.py") || !strings.Contains(launcher, `"debugpy_none": false`) {
		t.Fatalf("probe: %s", launcher)
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
