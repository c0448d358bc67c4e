"""A Docker engine of the test's own, and what the image build needs on a machine without a registry.

dockerd runs with its own data root (kept between runs: it caches the base image and the build's
layers), its own socket, and no bridge network, so containers can only use the host's network.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA_ROOT = Path("/var/lib/autograde-test-docker")
RUN_ROOT = Path("/run/autograde-test-docker")
SOCKET = RUN_ROOT / "docker.sock"
DOCKER_HOST = f"unix://{SOCKET}"
BASE_IMAGE_PREFIX = "autograde-test-base"
# The image installs Debian's python3; the wheels are chosen for the same interpreter on this machine.
DEBIAN_PYTHON = "/usr/bin/python3"


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed; `make system-deps` installs it", pytrace=False)
    return found


def docker_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL")
    return {key: os.environ[key] for key in keep if key in os.environ} | {"DOCKER_HOST": DOCKER_HOST}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [require_tool("docker"), *args],
        env=docker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@contextlib.contextmanager
def running_dockerd(log: Path) -> Iterator[None]:
    """Start dockerd, wait until it answers, stop it after; one test run at a time per machine."""
    if os.geteuid() != 0:
        pytest.fail("the deployment test starts its own dockerd and must run as root", pytrace=False)
    dockerd = require_tool("dockerd")
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with (DATA_ROOT.parent / f"{DATA_ROOT.name}.lock").open("w") as lock:
        # Another worktree's run of this test waits here instead of sharing the data root.
        fcntl.flock(lock, fcntl.LOCK_EX)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    dockerd,
                    f"--data-root={DATA_ROOT}",
                    f"--exec-root={RUN_ROOT / 'exec'}",
                    f"--pidfile={RUN_ROOT / 'dockerd.pid'}",
                    f"--host={DOCKER_HOST}",
                    # Host networking only: no bridge, no iptables rules on the machine.
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while docker("version", check=False, timeout=10).returncode != 0:
                assert process.poll() is None, f"dockerd exited:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"dockerd did not answer:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def debian_mirror_and_suite() -> tuple[str, str]:
    """The Debian mirror this machine's apt uses (the only one reachable), and its release."""
    release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    suite = release.get("VERSION_CODENAME", "").strip('"')
    assert suite, "/etc/os-release names no Debian release"
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file() or source.suffix not in ("", ".list", ".sources"):
            continue
        text = source.read_text(encoding="utf-8", errors="replace")
        # One-line format ("deb URI SUITE ...") and deb822 ("URIs: URI" with "Suites: SUITE ...").
        for uri in re.findall(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{suite}\s", text, re.MULTILINE):
            return uri, suite
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.*)$", stanza, re.MULTILINE)
            if uris and suites and suite in suites.group(1).split():
                return uris.group(1), suite
    pytest.fail(f"no apt source for {suite} in /etc/apt", pytrace=False)


def ensure_base_image(work: Path) -> str:
    """A minimal Debian image made by debootstrap from the machine's mirror; built once, then reused."""
    mirror, suite = debian_mirror_and_suite()
    tag = f"{BASE_IMAGE_PREFIX}:{suite}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    rootfs = work / "rootfs"
    done = subprocess.run(
        [require_tool("debootstrap"), "--variant=minbase", suite, str(rootfs), mirror],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            [require_tool("docker"), "import", "-", tag],
            stdin=tar.stdout,
            env=docker_env(),
            capture_output=True,
            timeout=600,
            check=False,
        )
    assert imported.returncode == 0, imported.stderr.decode(errors="replace")
    shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def download_wheels(requirements: list[str], folder: Path) -> None:
    """Every dependency as a wheel, for the image's interpreter: Debian's python3 of the same release.

    pip runs under that interpreter (pip --python) so environment markers match the image's (redis
    needs async-timeout below Python 3.11.3); pip's own configuration finds torch's CPU wheel locally.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(requirements))
    pip = [sys.executable, "-m", "pip", "--python", DEBIAN_PYTHON]
    done = subprocess.run(
        [*pip, "download", "--quiet", "-r", listing.name, "-d", str(folder)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    os.unlink(listing.name)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@contextlib.contextmanager
def serving_folder(folder: Path) -> Iterator[str]:
    """The folder over HTTP on loopback (pip's --find-links reads the listing); yields its URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
