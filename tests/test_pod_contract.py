"""The router under the contract of the pod that KServe's controller creates, without
a container: an installed copy of the package on a read-only root file system, a
numeric non-root user with every capability dropped and no new privileges, HOME and
TMPDIR that cannot be written, the controller's arguments (``--graph-json <spec>``)
and environment (``PROPAGATE_HEADERS``), readiness on ``/readyz`` and the SIGTERM
drain.

The read-only root is a private mount namespace in which ``/`` is remounted read-only
(what ``readOnlyRootFilesystem: true`` gives the container); where that cannot be
done the test falls back to file permissions. Either way it checks that no file
appears in the package, HOME, TMPDIR, the working directory, /tmp or /var/tmp.
The Dockerfile's image is this set-up with a base image around it.
"""
from __future__ import annotations

import compileall
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import engine
from routerkit import ThreadedModel, free_port

# distroless's "nonroot": what the Dockerfile's USER is; any uid but 0 would do
POD_UID = 65532
SCRATCH_DIRS = ("/tmp", "/var/tmp")  # on the root file system in a pod

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and util-linux's setpriv to start the router as another user")


def controller_spec(model_url: str) -> str:
    """``json.Marshal(graph.Spec)`` as KServe's controller passes it: compact, Go's
    field order, ``resources`` always present (a struct: omitempty does not drop it)."""
    spec = {
        "nodes": {"root": {"routerType": "Sequence", "steps": [
            {"name": "first", "serviceUrl": model_url},
            {"name": "second", "serviceUrl": model_url, "data": "$response"},
        ]}},
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                      "requests": {"cpu": "100m", "memory": "100Mi"}},
        "routerTimeouts": {"serverRead": 60, "serviceClient": 30},
        "minReplicas": 1,
    }
    return json.dumps(spec, separators=(",", ":"))


def reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every directory on the
    way searchable by others): the venv and Python must be, for the pod's user."""
    path = path.resolve()
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def read_only_root_works() -> bool:
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--",
         "mount", "-o", "remount,bind,ro", "/"], capture_output=True, timeout=10)
    return probe.returncode == 0


def snapshot(roots) -> set:
    """Every file and directory under ``roots`` with its size and mtime."""
    seen = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                seen.add((p, st.st_size, st.st_mtime_ns))
    return seen


def owned_by_pod_user(dirs) -> set:
    found = set()
    for d in dirs:
        with os.scandir(d) as it:
            for entry in it:
                try:
                    if entry.stat(follow_symlinks=False).st_uid == POD_UID:
                        found.add(entry.path)
                except FileNotFoundError:
                    pass
    return found


@pytest.fixture
def pod_fs():
    """An installed copy of the package (bytecode compiled at install, as pip does in
    the image), and empty HOME, TMPDIR and working directories, all read-only."""
    base = Path(tempfile.mkdtemp(prefix="ige-pod-"))
    base.chmod(0o755)
    site = base / "site"
    shutil.copytree(Path(engine.__file__).parent, site / "engine",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert compileall.compile_dir(str(site), quiet=1)
    dirs = {name: base / name for name in ("home", "tmp", "cwd")}
    for d in dirs.values():
        d.mkdir()
    for p in [base, *base.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        yield site, dirs
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(base)


def http_get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def assert_readiness_fails(port: int) -> None:
    """After SIGTERM: /readyz answers 503 while the router drains (polled, bounded)."""
    deadline, seen = time.monotonic() + 10, []
    while time.monotonic() < deadline and 503 not in seen:
        try:
            seen.append(http_get(port, "/readyz"))
        except (urllib.error.URLError, OSError) as e:  # the drain already ended
            seen.append(repr(e))
            break
    assert 503 in seen, f"readiness never failed during the drain: {seen}"


def wait_ready(proc, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"router exited: {proc.communicate()[1].decode()}"
        try:
            if http_get(port, "/readyz") == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError("router did not become ready")


@needs_root
def test_router_serves_and_drains_as_the_kserve_pod(pod_fs):
    site, dirs = pod_fs
    venv_bin = Path(sys.executable).parent
    # A Python under a directory that only its owner may search (pyenv's in /root)
    # cannot be run by the pod's user: then it keeps CAP_DAC_READ_SEARCH alone, which
    # lets it read and search and write nothing more than without it.
    caps = "-all"
    if not all(reachable_by_others(Path(p)) for p in (sys.prefix, sys.base_prefix)):
        caps = "-all,+dac_read_search"
    ige = [str(venv_bin / "ige")] if (venv_bin / "ige").exists() else [sys.executable, "-m", "engine"]
    read_only_root = read_only_root_works()
    port, grpc_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"]),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(site),
        # the controller's env: the router config's headers.propagate, joined by ","
        "PROPAGATE_HEADERS": "Authorization,Test-Header-*",
    }
    with ThreadedModel(lambda request: (200, {"predictions": [1]})) as model:
        # the pod's arguments exactly, then what this test needs on a shared machine
        args = ["--graph-json", controller_spec(model.url),
                "--http-port", str(port), "--grpc-port", str(grpc_port),
                "--host", "127.0.0.1", "--drain-seconds", "1"]
        as_pod_user = ["setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups",
                       f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
                       "--no-new-privs", "--"]
        cmd = as_pod_user + ige + args
        if read_only_root:
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                   'mount -o remount,bind,ro / && exec "$@"', "sh", *cmd]
        watched = [site, *dirs.values()]
        before, scratch_before = snapshot(watched), owned_by_pod_user(SCRATCH_DIRS)
        proc = subprocess.Popen(cmd, env=env, cwd=dirs["cwd"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_ready(proc, port)
            # the installed copy is what runs, not the source tree
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert str(site / "engine" / "_core") in maps

            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/", data=b'{"instances": [1]}', method="POST",
                headers={"Test-Header-Trace": "t1", "X-Not-Listed": "no"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert (r.status, json.loads(r.read())) == (200, {"predictions": [1]})
            assert len(model.requests) == 2
            sent = {k.lower(): v for k, v in model.requests[1].headers}
            assert sent[b"test-header-trace"] == b"t1" and b"x-not-listed" not in sent

            import grpc
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
                assert live(b"", timeout=10, wait_for_ready=True) == b"\x08\x01"

            proc.send_signal(signal.SIGTERM)
            assert_readiness_fails(port)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
    text = err.decode()
    assert proc.returncode == 0, text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert "draining" in [r["msg"] for r in records] and "Traceback" not in text
    assert [r for r in records if r["level"] in ("warning", "error")] == []
    assert snapshot(watched) == before
    assert owned_by_pod_user(SCRATCH_DIRS) == scratch_before
