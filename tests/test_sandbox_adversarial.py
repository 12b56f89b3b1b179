"""Hostile programs through the real sandbox: the host, the scorer and its files survive,
each program gets the right status, and nothing is left running afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

from codyn.scoring.sandbox import Limits, Sandbox, worker_command

LIMITS = Limits(
    timeout_s=2.0, cpu_s=2, memory_mb=512, nproc=32, fsize_mb=4, nofile=64, max_output_kb=64
)


def _uid_processes(uids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:") and int(line.split()[1]) in uids:
                        found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module", params=["unshare", "bwrap"])
def sandbox(request):
    """Every hostile program runs under each isolation mode this machine has."""
    if not shutil.which(request.param):
        pytest.skip(f"{request.param} is not installed")
    with Sandbox(LIMITS, workers=2, isolation=request.param) as box:
        yield box


@pytest.fixture
def guarded(sandbox, tmp_path):
    """A scorer-owned file that must survive, and a check that nothing is left running."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    os.chmod(tmp_path, 0o755)
    yield precious
    assert precious.read_text() == "keep me"
    worker_pids = sandbox.worker_pids()
    assert all(os.path.exists(f"/proc/{pid}") for pid in worker_pids), "a worker died"
    if sandbox.worker_uids():
        deadline = time.monotonic() + 2
        while _uid_processes(set(sandbox.worker_uids())) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _uid_processes(set(sandbox.worker_uids())) == [], "sandboxed processes left running"


def test_isolation_is_real(sandbox):
    info = sandbox.describe()
    assert info["isolation"] == sandbox.requested_isolation
    if os.geteuid() == 0:
        assert info["unprivileged_uid"] and info["pid_namespace_per_program"]


def test_fork_bomb_is_contained(sandbox, guarded):
    bomb = (
        "import os, sys\n"
        "failed = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        failed += 1\n"
        "        break\n"
        "import time; time.sleep(30)\n"
    )
    started = time.monotonic()
    res = sandbox.run(bomb)
    assert res.status == "timeout"
    assert time.monotonic() - started < LIMITS.timeout_s + 3
    # RLIMIT_NPROC really binds: a bounded probe sees fork fail before 200 children.
    probe = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    while n < 200:\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('blocked after', n, exc.errno)\n"
    )
    res = sandbox.run(probe)
    assert res.status == "ok", res
    assert res.stdout.startswith("blocked after"), res.stdout
    assert int(res.stdout.split()[2]) < LIMITS.nproc


def test_infinite_loop_times_out(sandbox, guarded):
    res = sandbox.run("while True:\n    pass\n")
    assert res.status == "timeout"


def test_huge_allocation_is_memory_limit(sandbox, guarded):
    res = sandbox.run("block = bytearray(50 * 1024 ** 3)\n")
    assert res.status == "memory_limit", res


def test_cannot_write_outside_workdir(sandbox, guarded):
    target = guarded.parent / "evil.txt"
    res = sandbox.run(f"open({str(target)!r}, 'w').write('x')\n")
    assert res.status == "runtime_error"
    assert "Permission" in res.detail or "No such file" in res.detail
    assert not target.exists()
    # /tmp is private to the worker: nothing lands in the host's /tmp.
    marker = f"codyn-adversarial-{os.getpid()}"
    res = sandbox.run(f"open('/tmp/{marker}', 'w').write('x')\nprint('written')\n")
    assert not os.path.exists(f"/tmp/{marker}")


def test_cannot_delete_files(sandbox, guarded):
    res = sandbox.run(f"import os\nos.remove({str(guarded)!r})\n")
    assert res.status == "runtime_error"
    res = sandbox.run(f"import shutil\nshutil.rmtree({str(guarded.parent)!r})\n")
    assert res.status == "runtime_error"
    assert guarded.exists()


def test_no_loopback_to_host(sandbox, guarded):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')\n"
    res = sandbox.run(program)
    try:
        # A completed connection would wait in the backlog; there must be none.
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert res.status == "runtime_error"
    assert "connected" not in res.stdout
    # The same program in the host namespace does connect: the listener is real.
    listener = socket.create_server(("127.0.0.1", port))
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    listener.close()


def test_no_route_to_public_address(sandbox, guarded):
    # TEST-NET-1 (RFC 5737): unroutable even on a networked host; here there is no network.
    res = sandbox.run("import socket\ns = socket.create_connection(('192.0.2.1', 80), timeout=1)\n")
    assert res.status == "runtime_error"
    assert "unreachable" in res.detail.lower()


def test_environment_has_no_secrets(sandbox, guarded, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "top-secret-value")
    res = sandbox.run(
        "import os\nprint(sorted(os.environ))\nprint(open('/proc/1/environ','rb').read() if False else '')\n"
    )
    assert res.status == "ok"
    assert "AWS" not in res.stdout and "top-secret-value" not in res.stdout
    # Nor can it read another process's environment (the scorer's, here).
    res = sandbox.run(f"print(open('/proc/{os.getpid()}/environ', 'rb').read())\n")
    assert "top-secret-value" not in res.stdout


def test_cannot_kill_parent_or_scorer(sandbox, guarded):
    for program in (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\n",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
    ):
        sandbox.run(program)
    assert sandbox.run("print('alive')").stdout == "alive\n"


def test_stdout_flood_is_capped(sandbox, guarded):
    res = sandbox.run("while True:\n    print('x' * 4096)\n")
    assert res.status == "runtime_error"
    assert "output" in res.detail
    assert len(res.stdout) <= LIMITS.max_output_kb * 1024


def test_sleeping_children_are_killed(sandbox, guarded):
    program = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "time.sleep(60)\n"
    )
    res = sandbox.run(program)
    assert res.status == "timeout"
    # Children that outlive a parent which exits normally die with its namespace too.
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')\n"
    res = sandbox.run(program)
    assert res.status == "ok" and "parent done" in res.stdout


def test_file_size_limit(sandbox, guarded):
    res = sandbox.run("open('big', 'wb').write(b'x' * (64 * 1024 * 1024))\n")
    assert res.status == "runtime_error"


def test_bad_programs_get_statuses(sandbox, guarded):
    assert sandbox.run("def f(:\n").status == "syntax_error"
    assert sandbox.run("\x00\x01\x02garbage").status == "syntax_error"
    assert sandbox.run("assert False, 'no'").status == "fail"
    assert sandbox.run("raise ValueError('x')").status == "runtime_error"
    assert sandbox.run("import os\nos._exit(0)", require_marker=True).status == "runtime_error"
    assert sandbox.run("x = 1\n__codyn_report__()", require_marker=True).status == "ok"


def test_worker_command_modes():
    assert "--net" in worker_command("unshare", LIMITS)
    assert "unshare" not in " ".join(worker_command("none", LIMITS))
    with pytest.raises(ValueError):
        worker_command("chroot", LIMITS)


def test_cpu_limit_is_timeout(sandbox, guarded):
    limits = Limits(
        timeout_s=5.0, cpu_s=1, memory_mb=512, nproc=32, fsize_mb=4, nofile=64, max_output_kb=64
    )
    started = time.monotonic()
    res = sandbox.run("while True:\n    pass\n", limits=limits)
    assert res.status == "timeout" and "CPU" in res.detail, res
    assert time.monotonic() - started < 4


def test_huge_program_text(sandbox, guarded):
    res = sandbox.run("x = 1\n" * 2_000_000 + "print('end')")
    assert res.status in ("ok", "memory_limit", "timeout")
    res = sandbox.run("(" * 100_000)
    assert res.status in ("syntax_error", "memory_limit")


def test_private_loopback_works_inside(sandbox, guarded):
    # The namespace's own 127.0.0.1 serves the program itself, never the host.
    program = (
        "import socket\n"
        "server = socket.socket()\n"
        "server.bind(('127.0.0.1', 0))\n"
        "server.listen(1)\n"
        "client = socket.create_connection(server.getsockname(), timeout=1)\n"
        "conn, _ = server.accept()\n"
        "client.sendall(b'ping')\n"
        "print(conn.recv(4).decode())\n"
    )
    res = sandbox.run(program)
    assert (res.status, res.stdout) == ("ok", "ping\n"), res


def test_program_is_an_importable_module(sandbox, guarded):
    program = "import pickle, sys\nclass Point:\n    pass\nprint(type(pickle.loads(pickle.dumps(Point()))).__name__)\n"
    res = sandbox.run(program)
    assert (res.status, res.stdout) == ("ok", "Point\n"), res


def test_dead_worker_is_replaced(sandbox, guarded):
    os.kill(sandbox.worker_pids()[0], 9)
    os.kill(sandbox.worker_pids()[1], 9)
    results = [sandbox.run("print('after')") for _ in range(4)]
    assert results[-1].stdout == "after\n"
    assert all(r.status in ("ok", "runtime_error") for r in results)


def test_program_dies_with_its_worker(sandbox, guarded):
    import threading

    uids = set(sandbox.worker_uids())
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(sandbox.run("import time\ntime.sleep(30)")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(_uid_processes(uids)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_uid_processes(uids)) >= 2, "the sleeping programs did not start"
    for pid in sandbox.worker_pids():
        os.kill(pid, 9)
    for thread in threads:
        thread.join(timeout=10)
    assert [r.status for r in results] == ["runtime_error", "runtime_error"]
    # guarded then checks that no process of the old uids is left.
