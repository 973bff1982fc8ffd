package kernel

// Launcher is the Python program DefaultArgv runs. It starts the kernel
// exactly as `python3 -m ipykernel_launcher` does (same sys.argv, sys.path
// and __main__; runpy's own -m entry point) with one difference: while
// ipykernel loads, `import debugpy` fails, so ipykernel leaves out its
// support for the Jupyter debugger protocol (kernel_info says
// "debugger": false). Ship never speaks that protocol, and that import (with
// pkg_resources, which debugpy's vendored pydevd pulls in) was about a fifth
// of the kernel's import time and printed a "frozen modules" warning at every
// start. User code imports debugpy as usual afterwards. The text contains
// "ipykernel_launcher", which is how Ship recognizes the kernel's process.
const Launcher = `import os, sys
if sys.path and sys.path[0] == "":
    sys.path[0] = os.getcwd()  # what python3 -m puts there
sys.modules["debugpy"] = None  # ipykernel: debugger support unavailable
try:
    import ipykernel.ipkernel
finally:
    del sys.modules["debugpy"]
import runpy
runpy._run_module_as_main("ipykernel_launcher")
`
