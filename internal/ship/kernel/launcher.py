# Ship's kernel launcher: run with python3 -c, it starts the kernel exactly as
# `python3 -m ipykernel_launcher` does (same sys.argv, sys.path and __main__;
# runpy's own -m entry point), with less work while the kernel starts. Every
# change below ends when IPKernelApp.initialize returns, before the kernel
# answers its first request; user code finds the interpreter as -m leaves it.
#
#  - `import debugpy` fails while ipykernel loads, so that it leaves out the
#    Jupyter debugger protocol, which Ship never speaks (kernel_info says
#    "debugger": false; user code imports debugpy as usual).
#  - Modules the kernel does not need to start are deferred (DEFER below):
#    created at import, executed on first use, as importlib.util.LazyLoader
#    does; IPython.embed is bound on first access.
#  - The code of the modules a start imports is read from one file written
#    when the image was built (BUNDLE; see images/ship/build.sh) instead of
#    ~550 .pyc files and ~4,700 stats through the container's storage
#    driver; only when it still matches the disk (python's magic number,
#    sys.path, the mtime of every directory it came from, nothing shadowing
#    it in the working directory), else imports read the disk as usual.
#    The file also holds re's compiled form of the regular expressions a
#    start compiles: re's cache has them before the modules ask.
#  - Standard modules a start imports but never uses (ssl, pydoc, zipfile,
#    ...) are deferred too; gettext's searches for argparse's catalogs are
#    remembered; IPython's history database is not fsynced while the start
#    creates it (each connection's setting is restored at the end).
#  - The cyclic garbage collector does not run during the start.
#
# With SHIPYARD_KERNEL_BUNDLE_OUT set, it writes that file instead of
# serving: at the end of the start it saves the code of every module
# imported from source and the patterns compiled, then exits.
#
# With SHIPYARD_KERNEL_FILES_OUT set, it starts as usual (with the bundle
# when it matches) and writes that file at the end of the start, then exits:
# the files and directories of the image the start read, in the order it
# first needed them ("f SIZE PATH" or "d PATH" a line: the interpreter and its
# libraries, the directories it listed, the bundle, the extension modules
# with the libraries they load, ...). Ship reads them when it starts, ahead
# of the kernel (FILES; internal/ship/boot.Prefetch), so that the kernel
# finds them in memory instead of waiting on the storage driver for each.
# The list only says what to read early: a stale one costs time, never
# correctness.
#
# Ship recognizes the kernel's process by "ipykernel_launcher" in its
# command line (this text).
import os, sys

if sys.path and sys.path[0] == "":
    sys.path[0] = os.getcwd()  # what python3 -m puts there


def _shipyard_start():
    import gc, time, types, marshal, threading, zlib
    from importlib._bootstrap_external import MAGIC_NUMBER, SourceFileLoader, spec_from_file_location

    BUNDLE = "/usr/local/lib/shipyard/kernel-start.bundle"
    # Deferred modules, each with the attributes it answers without being
    # executed (set before it is: jedi.settings, imported below).
    DEFER = {
        "IPython.terminal.embed": (),  # prompt_toolkit, pygments' terminal, the terminal shell
        "jedi": ("settings",),  # completion (IPython sets jedi.settings... at import)
        "jedi.api": (),
        "jedi.api.classes": (),
        "jedi.api.helpers": (),
        "stack_data": (),  # tracebacks
    }
    # Imported by a start, never used by it nor by the first cell: each is
    # executed on first use, and what it alone imports (ssl's libssl and
    # libcrypto, bz2's, lzma's, curses' extension modules) with it.
    DEFER.update(dict.fromkeys((
        "asyncio.format_helpers", "asyncio.sslproto", "asyncio.staggered", "asyncio.trsock",
        "bz2", "cProfile", "code", "curses", "dataclasses", "dateutil.relativedelta",
        "email.base64mime", "email.errors", "email.header", "email.parser", "email.quoprimime",
        "ipaddress", "lzma", "mimetypes", "packaging", "pexpect", "pstats", "pydoc", "shlex",
        "ssl", "zipfile"), ()))
    # IPython/__init__.py of Debian's python3-ipython 8.5.0 (crc32), whose
    # `from .terminal.embed import embed` becomes a deferred binding.
    IPYTHON_INIT = 2925608568
    began = time.perf_counter()
    out = os.environ.get("SHIPYARD_KERNEL_BUNDLE_OUT")
    files_out = None if out else os.environ.get("SHIPYARD_KERNEL_FILES_OUT")
    gc_was = gc.isenabled()
    gc.disable()
    try:
        log = os.dup(2)  # Ship's log of the kernel's own output, before ipykernel takes fd 2
    except OSError:
        log = None
    path = list(sys.path)
    served = [0]
    patterns = []  # the regular expressions a start compiles (see compiled_patterns)

    def mtime(d):
        try:
            return os.stat(d).st_mtime_ns
        except OSError:
            return None

    # --- the bundle -------------------------------------------------------
    # The file holds what it must match, an index (each module's place in
    # the code that follows, and the patterns), then the modules' code in
    # the order a start imports them. A thread reads the code while this one
    # checks the ~65 directories and then imports: a module's code is
    # unmarshalled as soon as its part has arrived (the reads wait on the
    # storage driver with the GIL released). Nothing is executed before
    # the directories are found to match.
    CHUNK = 1 << 20

    class Stream:
        def __init__(self, fd, base, size):
            self.fd, self.base, self.size = fd, base, size
            self.buf = memoryview(bytearray(size))
            self.filled, self.done, self.stop = 0, False, False
            self.cond = threading.Condition()
            # A name of its own: an unnamed thread would take "Thread-1"
            # from the user's first one. Joined at the end of the start.
            self.thread = threading.Thread(target=self.run, name="shipyard-bundle-read", daemon=True)
            self.thread.start()

        def run(self):
            try:
                while self.filled < self.size and not self.stop:
                    n = os.preadv(self.fd, [self.buf[self.filled:self.filled + CHUNK]], self.base + self.filled)
                    if n <= 0:
                        raise EOFError
                    with self.cond:
                        self.filled += n
                        self.cond.notify_all()
            except Exception:
                pass  # what was not read comes from the disk
            finally:
                os.close(self.fd)
                with self.cond:
                    self.done = True
                    self.cond.notify_all()

        def code(self, off, n):
            with self.cond:
                while self.filled < off + n and not self.done:
                    self.cond.wait()
                if self.filled < off + n:
                    return None
            return marshal.loads(self.buf[off:off + n])

        def close(self):
            self.stop = True
            self.thread.join()
            self.buf = None

    stream = None

    def read_bundle():
        nonlocal stream
        try:
            fd = os.open(BUNDLE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, "none"
        except OSError as e:
            return None, "unreadable (%s)" % type(e).__name__
        try:
            with open(fd, "rb", closefd=False) as f:
                b = marshal.load(f)
                if b["magic"] != MAGIC_NUMBER or b["optimize"] != sys.flags.optimize or b["path"] != path:
                    os.close(fd)
                    return None, "stale (python or sys.path)"
                mods, patterns[:] = marshal.load(f)
                base = f.tell()
            stream = Stream(fd, base, os.fstat(fd).st_size - base)
        except Exception as e:  # unreadable: start as usual
            os.close(fd)
            return None, "unreadable (%s)" % type(e).__name__
        why = None
        for d, t in b["dirs"].items():
            if mtime(d) != t:
                why = "stale (" + d + ")"
                break
        if why is None:
            try:
                here = os.listdir(path[0])
            except OSError:
                here = ()
            for n in here:
                if n.partition(".")[0] in mods:
                    why = "shadowed (" + n + ")"
                    break
        if why is not None:
            stream.close()
            stream = None
            return None, why
        return mods, "used"

    class BundleLoader(SourceFileLoader):
        def exec_module(self, m):
            # The module gets the loader the path finder gives it.
            plain = SourceFileLoader(self.name, self.path)
            m.__spec__.loader = m.__loader__ = plain
            e = mods.pop(self.name, None)
            code = None if e is None or stream is None else stream.code(e[2], e[3])
            if code is None:  # after the start (or the file ended early)
                return plain.exec_module(m)
            served[0] += 1
            exec(code, m.__dict__)

    class BundleFinder:
        @staticmethod
        def find_spec(name, where=None, target=None):
            e = mods.get(name)
            if e is None or [p for p in sys.path if p] != path or ("" in sys.path and os.getcwd() != path[0]):
                return None
            origin, pkg = e[0], e[1]
            d = os.path.dirname(origin)
            if where is not None and list(where) != [os.path.dirname(d) if pkg else d]:
                return None
            return spec_from_file_location(name, origin, loader=BundleLoader(name, origin),
                                           submodule_search_locations=[d] if pkg else None)

    # --- deferred modules -------------------------------------------------
    meta = frozenset(("__name__", "__spec__", "__loader__", "__package__", "__path__",
                      "__file__", "__cached__", "__class__"))
    lock = threading.RLock()  # one for all: a load imports, which may load another
    Module = types.ModuleType

    def load(m):
        with lock:
            d = Module.__getattribute__(m, "__dict__")
            spec = d["__spec__"]
            if type(m) is not Deferred or spec.loader_state is None:
                return  # done, or being executed by this thread
            real, before = spec.loader_state
            spec.loader_state = None
            # Set since creation (submodules bound by the import system):
            # set again after execution, as if set after it.
            late = {k: v for k, v in d.items() if before.get(k, load) is not v}
            try:
                real.exec_module(m)
                d.update(late)
            finally:
                object.__setattr__(m, "__class__", Module)

    class Deferred(Module):
        def __getattribute__(self, name):
            if name not in meta:
                d = Module.__getattribute__(self, "__dict__")
                if name not in DEFER.get(d["__name__"], ()) or name not in d:
                    load(self)
            return Module.__getattribute__(self, name)

        def __setattr__(self, name, value):
            if name not in meta and not isinstance(value, Module):
                load(self)
            Module.__setattr__(self, name, value)

        def __delattr__(self, name):
            load(self)
            Module.__delattr__(self, name)

        def __dir__(self):
            load(self)
            return Module.__dir__(self)

    class DeferLoader:
        def __init__(self, real):
            self.real = real

        def create_module(self, spec):
            return self.real.create_module(spec)

        def exec_module(self, m):
            # It shows the loader it gets when it is executed.
            real = self.real
            shown = SourceFileLoader(real.name, real.path) if isinstance(real, BundleLoader) else real
            m.__spec__.loader = m.__loader__ = shown
            m.__spec__.loader_state = (real, dict(m.__dict__))
            object.__setattr__(m, "__class__", Deferred)

    def bind_embed(m):
        from IPython.terminal.embed import embed
        object.__setattr__(m, "__class__", Module)
        Module.__setattr__(m, "embed", embed)
        return embed

    class IPythonModule(Module):
        def __getattr__(self, name):
            if name != "embed":
                raise AttributeError("module %r has no attribute %r" % (self.__name__, name))
            return bind_embed(self)

        @property
        def __dict__(self):  # vars(), dir(), import *: with embed
            if type(self) is IPythonModule:
                bind_embed(self)
            return Module.__dict__["__dict__"].__get__(self)

    class IPythonLoader(DeferLoader):
        def exec_module(self, m):
            origin = m.__spec__.origin
            m.__spec__.loader = m.__loader__ = SourceFileLoader(m.__name__, origin)
            with open(origin, "rb") as f:
                src = f.read()
            old = b"from .terminal.embed import embed\n"
            if zlib.crc32(src) != IPYTHON_INIT or src.count(old) != 1:
                return m.__loader__.exec_module(m)
            src = src.replace(old, b'__import__("IPython.terminal.embed")\n')
            exec(compile(src, origin, "exec", dont_inherit=True), m.__dict__)
            object.__setattr__(m, "__class__", IPythonModule)

    class DeferFinder:
        @staticmethod
        def find_spec(name, where=None, target=None):
            if name not in DEFER and name != "IPython":
                return None
            for f in sys.meta_path:
                if f is not DeferFinder and hasattr(f, "find_spec"):
                    spec = f.find_spec(name, where, target)
                    if spec is not None:
                        break
            else:
                return None
            if spec.loader is not None and hasattr(spec.loader, "exec_module") and spec.loader_state is None:
                spec.loader = (IPythonLoader if name == "IPython" else DeferLoader)(spec.loader)
            return spec

    # --- the files a start reads (SHIPYARD_KERNEL_FILES_OUT) --------------
    files = {}  # path: "f" or "d", in the order the start first needed them
    recording = [False]

    def mapped():
        try:
            with open("/proc/self/maps") as f:
                return [p for p in (line.split(None, 5)[5:] for line in f) if p and p[0].startswith("/")]
        except OSError:
            return []

    def note(kind, p):
        if recording[0] and type(p) is str and p not in files:
            files[p] = kind

    def note_mapped():
        # The dynamic loader maps each library below the one before it:
        # from the top, the order they were loaded in.
        for p in reversed(mapped()):
            note("f", p[0].rstrip("\n"))

    def audit(event, args):
        if event == "open" and args:
            note("f", args[0])
        elif event in ("os.listdir", "os.scandir") and args:
            note("d", args[0])

    if files_out:
        from importlib.machinery import ExtensionFileLoader
        real_create_ext = ExtensionFileLoader.create_module

        def create_ext(self, spec):
            note("f", spec.origin)
            try:
                return real_create_ext(self, spec)
            finally:
                note_mapped()  # the libraries it loaded

        recording[0] = True
        # What the interpreter read before this code: itself and its
        # libraries, the directories of sys.path (site lists them), the
        # .pth files there and the modules imported so far; then the bundle.
        note("f", os.path.realpath(sys.executable))
        note_mapped()
        for p in path[1:] + list(sys.path_importer_cache):
            note("d", p)
        for p in path[1:]:
            try:
                pth = sorted(n for n in os.listdir(p) if n.endswith(".pth"))
            except OSError:
                continue
            for n in pth:
                note("f", os.path.join(p, n))
        for m in list(sys.modules.values()):
            spec = getattr(m, "__spec__", None)
            if spec is not None and spec.has_location and spec.cached:
                note("f", spec.cached)
        note("f", BUNDLE)
        sys.addaudithook(audit)  # (stays: this process ends with the start)
        ExtensionFileLoader.create_module = create_ext

    def write_files(file):
        # Only what belongs to the image: not the workspace, the home
        # directory, the connection file, /proc and the like.
        skip = tuple(d.rstrip("/") + "/" for d in ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp",
                                                     path[0], os.path.expanduser("~")) if d.strip("/"))
        lines = []
        for p, kind in files.items():
            if not os.path.isabs(p) or (p + "/").startswith(skip):
                continue
            p = os.path.normpath(p)
            if kind == "d" and os.path.isdir(p):
                lines.append("d %s\n" % p)
            elif kind == "f" and os.path.isfile(p):
                lines.append("f %d %s\n" % (os.path.getsize(p), p))
        tmp = file + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(dict.fromkeys(lines))
        os.replace(tmp, file)

    # --- the start --------------------------------------------------------
    mods, bundle = (None, "building") if out else read_bundle()
    finders = [DeferFinder] + ([BundleFinder] if mods else [])
    sys.meta_path[0:0] = finders

    # --- regular expressions ---------------------------------------------
    # The ~150 patterns the modules of a start compile: re parses and
    # compiles each in Python (~5% of the start). The bundle holds what re's
    # compiler gave for each when it was written (its arguments to
    # _sre.compile), and re's cache gets the same Pattern objects under the
    # same keys before the modules ask for them.
    import re, _sre
    real_re_compile, real_sre_compile = re._compile, _sre.compile
    compiled = []
    if out:
        last = []

        def sre_compile(*args):
            last.append(args)
            return real_sre_compile(*args)

        def record(pattern, flags):
            k = flags.value if isinstance(flags, re.RegexFlag) else flags
            new = type(pattern) in (str, bytes) and type(k) is int and (type(pattern), pattern, k) not in re._cache
            del last[:]
            p = real_re_compile(pattern, flags)
            if new and len(last) == 1 and last[0][0] == pattern and not k & re.DEBUG:
                a = last[0]  # the code's opcodes are int subclasses: plain ints for marshal
                compiled.append((type(pattern) is bytes, pattern, k, (a[0], a[1], [int(x) for x in a[2]]) + a[3:]))
            return p

        re._compile, _sre.compile = record, sre_compile
    elif mods and patterns and type(getattr(re, "_cache", None)) is dict:
        for isbytes, pattern, k, args in patterns:
            key = (bytes if isbytes else str, pattern, k)
            if key not in re._cache:
                try:
                    re._cache[key] = real_sre_compile(*args)
                except Exception:
                    pass
    patterns.clear()
    try:
        import jedi.settings  # noqa: F401 (bound on the deferred jedi)
    except ImportError:
        pass
    # gettext: argparse translates each of its messages (~40 while IPython
    # builds its magics' parsers), and every translation searches the locale
    # directories again for catalogs that are not there (8 stats through the
    # storage driver each time). During the start the same search gives the
    # same answer: remember it.
    import gettext
    real_find = gettext.find
    found = {}

    def find(domain, localedir=None, languages=None, all=False):
        try:
            key = (domain, localedir, None if languages is None else tuple(languages), all,
                   tuple(os.environ.get(v) for v in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")))
            r = found.get(key, found)
        except TypeError:
            return real_find(domain, localedir, languages, all)
        if r is found:
            r = found[key] = real_find(domain, localedir, languages, all)
        return list(r) if all else r

    gettext.find = find
    sys.modules["debugpy"] = None  # ipykernel: debugger support unavailable
    # Importing debugpy creates a thread object, which takes a number of the
    # default thread names (Thread-N): take it, so that the kernel's threads
    # and the user's get the names they get after -m.
    from importlib.machinery import PathFinder
    if PathFinder.find_spec("debugpy") is not None:
        threading._newname("Thread-%d")
    try:
        from ipykernel.kernelapp import IPKernelApp
        import ipykernel.ipkernel  # noqa: F401
    finally:
        del sys.modules["debugpy"]

    initialize = IPKernelApp.__dict__["initialize"]

    # IPython's history database: a start creates it (a new workspace) and
    # records the session, four transactions of four fsyncs each on the
    # workspace's volume. They are not synced during the start (sqlite's
    # synchronous=OFF on the connections made by this thread); the end of the
    # start restores each connection's setting, so the next commit syncs the
    # file with them. (A crash of the machine during the start could leave
    # the file damaged; IPython then moves it aside and starts a new one.)
    synced = []
    sqlite3 = real_connect = None

    def connect(*args, **kwargs):
        c = real_connect(*args, **kwargs)
        if threading.current_thread() is threading.main_thread():
            try:
                synced.append((c, c.execute("PRAGMA synchronous").fetchone()[0]))
                c.execute("PRAGMA synchronous=OFF")
            except Exception:
                pass
        return c

    def end(ok):
        IPKernelApp.initialize = initialize
        re._compile, _sre.compile = real_re_compile, real_sre_compile
        gettext.find = real_find
        found.clear()
        if real_connect is not None:
            sqlite3.connect = real_connect
        for c, level in synced:
            try:
                c.execute("PRAGMA synchronous=%d" % level)
            except Exception:
                pass
        synced.clear()
        for f in finders:
            if f in sys.meta_path:
                sys.meta_path.remove(f)
        if out and ok:
            write_bundle(out)
        if files_out:
            note_mapped()
            recording[0] = False
            ExtensionFileLoader.create_module = real_create_ext
            if ok:
                write_files(files_out)
        n, deferred = served[0], sum(type(m) is Deferred for m in list(sys.modules.values()))
        if mods:
            mods.clear()
        if stream is not None:
            stream.close()
        msg = "shipyard kernel start: %.0f ms, bundle %s (%d modules), %d deferred\n" % (
            (time.perf_counter() - began) * 1000, bundle, n, deferred)
        if log is not None:
            try:
                os.write(log, msg.encode())
            except OSError:
                pass
            os.close(log)
        if gc_was:
            gc.enable()
        if out or files_out:
            os._exit(0 if ok else 1)

    def write_bundle(file):
        modules, dirs = {}, {p: mtime(p) for p in path[1:]}
        codes, size = [], 0  # in the order of sys.modules: the order the start imported them
        for name, m in list(sys.modules.items()):
            spec = Module.__getattribute__(m, "__spec__") if isinstance(m, Module) else None
            if (name == "__main__" or type(m) is Deferred or spec is None or spec.name != name
                    or type(spec.loader) is not SourceFileLoader or not spec.origin.endswith(".py")):
                continue
            code = marshal.dumps(spec.loader.get_code(name))
            modules[name] = (spec.origin, spec.submodule_search_locations is not None, size, len(code))
            codes.append(code)
            size += len(code)
            d = os.path.dirname(spec.origin)
            dirs[d] = mtime(d)
        tmp = file + ".tmp"
        with open(tmp, "wb") as f:
            marshal.dump({"magic": MAGIC_NUMBER, "optimize": sys.flags.optimize, "path": path, "dirs": dirs}, f)
            marshal.dump((modules, compiled), f)
            f.write(b"".join(codes))
        os.replace(tmp, file)

    def wrapper(self, *args, **kwargs):
        nonlocal sqlite3, real_connect
        ok = False
        try:
            sqlite3 = sys.modules.get("sqlite3")  # imported by IPython.core.history
            if sqlite3 is not None and type(sqlite3) is Module:
                real_connect = sqlite3.connect
                sqlite3.connect = connect
            r = initialize(self, *args, **kwargs)
            ok = True
            return r
        finally:
            end(ok)

    IPKernelApp.initialize = wrapper


_shipyard_start()
del _shipyard_start
import runpy
runpy._run_module_as_main("ipykernel_launcher")
