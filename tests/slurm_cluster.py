"""A real single-node Slurm cluster on localhost, for integration tests.

Debian's ``slurm-wlm`` and ``munge`` (installed with apt-get when missing; needs
root), ``munged`` run as user munge, and ``slurmctld``/``slurmd`` run in the
foreground as children of this process with a generated ``slurm.conf``: one
GPU-less node (this host, all its CPUs) in one gres-free partition, no
accounting database (the executor plugin polls ``squeue``). The recipe is the
one measured in DESIGN.md section 6 (Slurm 22.05).

    with SlurmCluster(tmp_path) as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)

Every daemon this module started is stopped on exit, also after a failure;
daemons it did not start (a munged already running) are left alone.

Run by hand (prints the environment to use, Ctrl-C stops the cluster):
    python tests/slurm_cluster.py /tmp/slurm-demo
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PARTITION = "test"
MUNGE_KEY = Path("/etc/munge/munge.key")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed or started here; the message says why."""


def _run(cmd: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def missing_tools() -> list[str]:
    return [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if not shutil.which(t)]


def ensure_installed(timeout: float = 900) -> None:
    """Install slurm-wlm and munge with apt-get when they are missing.

    Raises SlurmUnavailable when they are missing and cannot be installed here
    (not root, or no apt-get); an apt-get failure on a machine that has apt-get
    and root is raised as a plain error, because that is a broken set-up, not an
    unsupported one.
    """
    if not missing_tools():
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"Slurm is not installed ({', '.join(missing_tools())} missing) and installing "
            "it needs root (apt-get install slurm-wlm munge)"
        )
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("Slurm is not installed and this machine has no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"],
    ):
        done = _run(cmd, timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    if missing_tools():
        raise RuntimeError(f"after apt-get install, still missing: {missing_tools()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


def slurm_conf(folder: Path, node: str, cpus: int, memory_mb: int, ports: tuple[int, int]) -> str:
    """slurm.conf for one node and one partition, everything kept in ``folder``."""
    return "\n".join(
        [
            "ClusterName=codyntest",
            f"SlurmctldHost={node}",
            # As root: no slurm user to create, and slurmd can start jobs as root.
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "AuthType=auth/munge",
            f"StateSaveLocation={folder}/state",
            f"SlurmdSpoolDir={folder}/spool",
            f"SlurmctldPidFile={folder}/slurmctld.pid",
            f"SlurmdPidFile={folder}/slurmd.pid",
            f"SlurmctldLogFile={folder}/slurmctld.log",
            f"SlurmdLogFile={folder}/slurmd.log",
            # No cgroups in containers: track processes by parent id, no task binding.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            # No slurmdbd: the executor plugin reads job states from squeue.
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            # squeue keeps finished jobs this long (s); the plugin's status poll needs them.
            "MinJobAge=600",
            "SlurmdTimeout=60",
            "InactiveLimit=0",
            "KillWait=5",
            # Trust the node line over the hardware: rules ask for more memory (mem_mb)
            # than a small CI machine has, and memory is not a consumable here (CR_Core),
            # so the jobs share the real memory as local jobs would.
            "SlurmdParameters=config_overrides",
            f"NodeName={node} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


class SlurmCluster:
    """Context manager: a started single-node cluster; ``env`` carries SLURM_CONF."""

    def __init__(self, folder: str | os.PathLike, start_timeout: float = 60):
        self.folder = Path(folder)
        self.start_timeout = start_timeout
        self.node = socket.gethostname().split(".")[0]
        # The default path, not one in `folder`: the jobstep plugin strips SLURM_*
        # variables (SLURM_CONF too) before its nested `srun`, which then finds no
        # config elsewhere. A file already there is kept aside and put back on stop.
        self.conf = SYSTEM_CONF
        self._conf_backup = self.folder / "slurm.conf.before"
        self._wrote_conf = False
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._procs: list[subprocess.Popen] = []

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        ensure_installed()
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd with SlurmUser=root needs root")
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        cpus = os.cpu_count() or 1
        memory = max(64000, _memory_mb())
        text = slurm_conf(self.folder, self.node, cpus, memory, (_free_port(), _free_port()))
        (self.folder / "slurm.conf").write_text(text)
        if self.conf.exists() and not self._conf_backup.exists():
            shutil.copy2(self.conf, self._conf_backup)
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self._wrote_conf = True
        self.conf.write_text(text)
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._spawn(["slurmd", "-D", "-f", str(self.conf)], "slurmd")
        self.wait_idle()

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        if self._wrote_conf:
            if self._conf_backup.exists():
                shutil.copy2(self._conf_backup, self.conf)
                self._conf_backup.unlink()
            else:
                self.conf.unlink(missing_ok=True)
            self._wrote_conf = False

    # -- parts ---------------------------------------------------------------
    def _spawn(self, cmd: list[str], name: str, **kwargs) -> subprocess.Popen:
        out = open(self.folder / f"{name}.stdout", "w")  # noqa: SIM115 - lives as long as the daemon
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, **kwargs)
        out.close()
        self._procs.append(proc)
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at once ({proc.returncode}):\n{self.logs(name)}")
        return proc

    def _munge_works(self) -> bool:
        try:
            cred = _run(["munge", "-n"], timeout=10)
            if cred.returncode != 0:
                return False
            return _run(["unmunge"], timeout=10, input=cred.stdout).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False

    def _start_munge(self) -> None:
        if self._munge_works():
            return  # a munged is running already (not ours: we leave it alone)
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        for folder in (Path("/run/munge"), Path("/var/lib/munge"), Path("/var/log/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        self._spawn(["munged", "--foreground"], "munged", user="munge", group="munge")
        deadline = time.monotonic() + 20
        while not self._munge_works():
            if time.monotonic() > deadline:
                raise RuntimeError(f"munged does not answer:\n{self.logs('munged')}")
            time.sleep(0.2)

    def node_state(self) -> str:
        done = _run(["sinfo", "-h", "-N", "-n", self.node, "-o", "%T"], env=self.env, timeout=10)
        return done.stdout.strip().lower() if done.returncode == 0 else ""

    def wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ""
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Slurm daemon died ({proc.args}):\n{self.logs()}")
            state = self.node_state()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"node {self.node} not idle after {self.start_timeout}s ({state!r}):\n{self.logs()}"
        )

    def logs(self, *names: str) -> str:
        names = names or ("munged", "slurmctld", "slurmd")
        out = []
        for name in names:
            for suffix in (".log", ".stdout"):
                path = self.folder / f"{name}{suffix}"
                if path.exists():
                    out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def job_ids(self) -> set[str]:
        """Ids of every job slurmctld has seen (squeue keeps them MinJobAge seconds)."""
        done = _run(["squeue", "-h", "-t", "all", "-o", "%i"], env=self.env, timeout=20)
        return {line.strip() for line in done.stdout.splitlines() if line.strip()}


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/codyn-slurm")
    where.mkdir(parents=True, exist_ok=True)
    with SlurmCluster(where) as cluster:
        print(f"export SLURM_CONF={cluster.conf}   # Ctrl-C stops the cluster", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
