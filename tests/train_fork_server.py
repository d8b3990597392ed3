"""``python train.py ARGS`` for the tests without paying train.py's imports (~12 s of CPU) every time: this process
imports what train.py imports, once, then for every request forks a child that runs train.py as ``__main__`` with
the request's argv, working directory and environment, its stdin on /dev/null and its stdout and stderr in files.
The child is a process of its own (its own exit status, file descriptors, signal handlers, atexit functions; it
ends the way ``python train.py`` ends: SystemExit's code, or an uncaught exception printed with its traceback and
status 1). What differs from a fresh interpreter is only what happened before train.py's first line: the imports
are done, with the OMP_NUM_THREADS this server was started with (train.py sets torch's threads from the child's
environment itself). Used by conftest.run_train_forked; conftest.run_train remains the plain subprocess.

Protocol: one JSON request per line on stdin, {"args", "cwd", "env", "stdout", "stderr", "timeout"} ("stderr":
null merges it into stdout; an optional "pid_file" gets the child's pid as soon as it is forked); one JSON answer per
line on stdout, {"returncode"} or {"timeout": true}.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "train.py"


def preload() -> None:
    """Import every module train.py imports at its top level (not train.py itself: the child runs it as
    ``__main__``, as ``python train.py`` does)."""
    for node in ast.parse(TRAIN.read_text()).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__" and node.level == 0:
            importlib.import_module(node.module)


def serve():
    """Answer requests until stdin closes. Returns None in this process; in a forked child, its request."""
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        if request.get("pid_file"):  # for a caller that signals the child while it runs (written whole, then renamed)
            Path(request["pid_file"] + ".part").write_text(str(pid))
            os.replace(request["pid_file"] + ".part", request["pid_file"])
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                answer = {"returncode": os.waitstatus_to_exitcode(status)}
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                answer = {"timeout": True}
                break
            time.sleep(0.02)
        print(json.dumps(answer), flush=True)
    return None


def become_train_py(request) -> None:
    """In the child: the file descriptors, environment, paths and streams ``python train.py`` would start with."""
    import io

    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if request["stderr"] else out, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # sys.path as the interpreter builds it: the script's folder first, then PYTHONPATH's entries; a sitecustomize
    # module on one of those is run, as site.py would at start-up
    sys.path[0] = str(ROOT)
    for entry in reversed([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(1, entry)
            if (Path(entry) / "sitecustomize.py").exists():
                importlib.import_module("sitecustomize")
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    encoding = sys.stdout.encoding

    def stream(fd, line_buffering, errors):
        raw = io.FileIO(fd, "w", closefd=False)
        return io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), encoding=encoding, errors=errors,
                                line_buffering=line_buffering, write_through=unbuffered)

    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = sys.__stdout__ = stream(1, False, "strict")
    sys.stderr = sys.__stderr__ = stream(2, True, "backslashreplace")
    sys.argv = [str(TRAIN), *request["args"]]


if __name__ == "__main__":
    preload()
    child_request = serve()
    if child_request is not None:
        import runpy

        become_train_py(child_request)
        del child_request
        runpy.run_path(str(TRAIN), run_name="__main__")
