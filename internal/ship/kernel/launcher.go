package kernel

import _ "embed" // Launcher

// Launcher is the Python program DefaultArgv runs (launcher.py, read it for
// the details). It starts the kernel exactly as `python3 -m
// ipykernel_launcher` does (same sys.argv, sys.path and __main__; runpy's own
// -m entry point), with less work while it starts: ipykernel leaves out the
// Jupyter debugger protocol, which Ship never speaks (importing debugpy for
// it, with the pkg_resources that pulls in, was about a fifth of the import
// time); modules the start does not need (the terminal shell with
// prompt_toolkit, jedi, stack_data) are executed on first use; the code of
// the modules it imports comes from one file, BundlePath, while that file
// matches the disk, and so do the regular expressions they compile (re's
// cache gets the same patterns); standard modules a start imports but never
// uses (ssl, pydoc, zipfile, ...) are executed on first use too; gettext's
// searches for argparse's message catalogs are remembered; IPython's history
// database is not fsynced while the start creates it; the garbage collector
// waits. All of it ends before the kernel answers its first request. The launcher writes one line to the
// kernel's own stderr at the end of the start (StartLinePrefix: how long it
// took, whether the bundle was used), which Ship logs.
//
// The text contains "ipykernel_launcher", which is how Ship recognizes the
// kernel's process.
//
//go:embed launcher.py
var Launcher string

// BundlePath is where the launcher looks for the code of the modules a
// kernel start imports; the Ship image writes it at build time by running
// the launcher with SHIPYARD_KERNEL_BUNDLE_OUT (images/ship/build.sh).
const BundlePath = "/usr/local/lib/shipyard/kernel-start.bundle"

// StartFilesPath lists the files and directories of the image a kernel start
// reads, in the order it first needs them ("f SIZE PATH" or "d PATH" a line). The
// Ship image writes it at build time by starting a kernel through the
// launcher with SHIPYARD_KERNEL_FILES_OUT; Ship reads what it lists as it
// starts (boot.Prefetch), ahead of the kernel. A stale list costs time only.
const StartFilesPath = "/usr/local/lib/shipyard/kernel-start.files"

// StartLinePrefix begins the line the launcher writes to the kernel's stderr
// when its start ends.
const StartLinePrefix = "shipyard kernel start: "
