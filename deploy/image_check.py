"""``make image-check``: build deploy/Dockerfile for real and run the image, with no
Docker engine and no image registry.

Podman builds the Dockerfile as it is, with ``BASE_IMAGE`` pointing at a Debian
bookworm made here with debootstrap (python3 and python3-venv; bookworm's python3 is
3.11, like ``python:3.11-slim-bookworm``), so only Debian's package mirror and PyPI
are needed. Then the image itself is checked as an operator would use it:

1. ``national-hub --help`` and ``local-node --help`` run in it;
2. the image's user is 10001 and it carries the HEALTHCHECK;
3. ``national-hub db upgrade`` then ``national-hub serve`` in a container against a
   real PostgreSQL on this host (the embedded one, its socket shared with the
   container): ``/healthz`` and ``/readyz`` answer 200 from the host, the image's own
   HEALTHCHECK command passes in the running container (and fails when pointed at a
   port nobody serves), and the server process, seen from the host, runs as uid 10001;
4. podman-compose reads deploy/compose.yaml as a real Compose implementation does
   (anchors merged, variables put in): the services are there, the hub builds this
   Dockerfile, and without ``POSTGRES_PASSWORD`` the file is refused. (Its images of
   PostgreSQL and Prometheus come from Docker Hub, so the stack is not started here.)

Everything lives under ``.data/image`` (podman's storage there too, so the machine's
own container storage is untouched). As root on Debian, missing tools (podman,
debootstrap, runc) are installed with apt-get. ``--base IMAGE`` builds on an existing
image instead, e.g. ``python:3.11-slim-bookworm`` where Docker Hub is reachable.
Prints the build time and the image's size; exits non-zero, saying what failed, if any
step fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import click
import yaml

from server_common import embedded_pg

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".data" / "image"
BASE_TAG = "localhost/signpost-base:bookworm"
IMAGE_TAG = "localhost/signpost:check"
HUB_CONTAINER = "signpost-image-check-hub"
UID = 10001
TOOLS = {"podman": "podman", "debootstrap": "debootstrap", "runc": "runc"}
HUB_DATABASE = "signpost_hub"
CONTAINER_SOCKET_DIR = "/run/postgresql"
COMPOSE_SERVICES = {"postgres", "hub", "node-esx", "node-wsx", "prometheus", "enrol"}


class CheckFailed(click.ClickException):
    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{what}\n{detail}".rstrip())


def step(text: str) -> None:
    click.echo(click.style(f"==> {text}", bold=True))


def run(args: list[str], *, check: bool = True, timeout: float = 1800,
        stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=stdin)
    if check and result.returncode != 0:
        raise CheckFailed(f"failed ({result.returncode}): {' '.join(args[:12])}",
                          (result.stderr or result.stdout)[-4000:])
    return result


class Podman:
    """podman with its own storage under .data/image, and the settings a sandbox or a
    plain server without systemd needs: runc with cgroupfs (crun refuses a host in
    cgroups' hybrid mode) and rlimits no higher than this process has (podman's
    default raises them, which needs CAP_SYS_RESOURCE)."""

    def __init__(self, driver: str) -> None:
        self.prefix = ["podman", "--root", str(WORK / "storage"), "--runroot",
                       str(WORK / "run"), "--storage-driver", driver,
                       "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[0])
        self.limits = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", f"nproc={nproc}:{nproc}"]

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return run([*self.prefix, *args], check=check, timeout=timeout)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("run", "--network", "host", *self.limits, *args, check=check)

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0


def ensure_tools(need_debootstrap: bool) -> None:
    missing = [pkg for tool, pkg in TOOLS.items()
               if shutil.which(tool) is None and (tool != "debootstrap" or need_debootstrap)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CheckFailed(f"missing: {', '.join(missing)}",
                          f"install them (Debian: apt-get install -y {' '.join(missing)})")
    step(f"installing {' '.join(missing)} with apt-get")
    env_run = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run([*env_run, "apt-get", "update", "-q"])
    run([*env_run, "apt-get", "install", "-y", "-q", *missing])


def make_base(podman: Podman, mirror: str | None) -> str:
    """A Debian bookworm with python3 and python3-venv, imported as BASE_TAG."""
    if podman.exists(BASE_TAG):
        click.echo(f"    {BASE_TAG} already made (rm -rf .data/image to make it again)")
        return BASE_TAG
    rootfs = WORK / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        source = mirror or "debootstrap's default mirror"
        step(f"debootstrap bookworm (python3, python3-venv) from {source}")
        shutil.rmtree(rootfs, ignore_errors=True)
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", str(rootfs), *([mirror] if mirror else [])])
    # The build's pip reaches PyPI through this machine's network: trust what this
    # machine trusts (its local CAs; none on most machines).
    local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for ca in local_cas:
        shutil.copy(ca, rootfs / "usr" / "local" / "share" / "ca-certificates" / ca.name)
    if local_cas:
        run(["chroot", str(rootfs), "update-ca-certificates"])
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    step(f"importing the root filesystem as {BASE_TAG}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        run([*podman.prefix, "import", "-", BASE_TAG], stdin=tar.stdout.fileno()
            if tar.stdout else None)
    finally:
        tar.wait()
    return BASE_TAG


def build(podman: Podman, base: str) -> float:
    step(f"podman build -f deploy/Dockerfile --build-arg BASE_IMAGE={base}")
    started = time.monotonic()
    # docker format: an OCI image config has no HEALTHCHECK; chroot isolation: RUN
    # steps need no OCI runtime; host network: pip reaches PyPI as this machine does.
    podman("build", "--format", "docker", "--isolation", "chroot", "--network", "host",
           *podman.limits, "--build-arg", f"BASE_IMAGE={base}",
           "-f", str(ROOT / "deploy" / "Dockerfile"), "-t", IMAGE_TAG, str(ROOT))
    return time.monotonic() - started


def check_image_config(podman: Podman) -> dict[str, object]:
    [info] = json.loads(podman("image", "inspect", IMAGE_TAG).stdout)
    config = info["Config"]
    if config.get("User") != f"{UID}:{UID}":
        raise CheckFailed(f"image user is {config.get('User')!r}, expected {UID}:{UID}")
    # Docker-format images keep the HEALTHCHECK beside the OCI config, not in it.
    health = info.get("Healthcheck") or {}
    if not health.get("Test"):
        raise CheckFailed("the image has no HEALTHCHECK", json.dumps(config, indent=1))
    return {"size": int(info["Size"]), "healthcheck": health["Test"]}


def check_help(podman: Podman) -> None:
    for program in ("national-hub", "local-node"):
        out = podman.run("--rm", "--no-healthcheck", IMAGE_TAG, program, "--help").stdout
        if "serve" not in out:
            raise CheckFailed(f"{program} --help does not list serve", out)
        click.echo(f"    {program} --help: {out.splitlines()[2].strip()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, timeout: float = 90) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    last: tuple[int, str] | Exception = TimeoutError()
    while time.monotonic() < deadline:
        try:
            last = get(url)
            if last[0] == 200:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise CheckFailed(f"{url} did not answer 200 within {timeout} s", repr(last))


def process_uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of ``pid``, as the host's kernel sees it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(v) for v in line.split()[1:]]
    raise CheckFailed(f"no Uid line for process {pid}")


def check_serve(podman: Podman, healthcheck: list[str]) -> None:
    step("PostgreSQL on this host (embedded), the hub's database migrated from the image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR as root
        base_url = embedded_pg.start(WORK / "pg")
    url = asyncio.run(embedded_pg.ensure_database(base_url, HUB_DATABASE))
    parts = urlsplit(url)
    # The server's socket lives in its data folder, which stays private (0700): only
    # the socket itself (mode 0777) is mounted into the container.
    socket_file = Path(parse_qs(parts.query)["host"][0]) / f".s.PGSQL.{parts.port or 5432}"
    in_container = urlunsplit((parts.scheme, parts.netloc, parts.path,
                               f"host={CONTAINER_SOCKET_DIR}", ""))
    share = ["-v", f"{socket_file}:{CONTAINER_SOCKET_DIR}/{socket_file.name}",
             "-e", f"NATIONAL_HUB__DATABASE__URL={in_container}"]
    podman.run("--rm", "--no-healthcheck", *share, IMAGE_TAG, "national-hub", "db", "upgrade")
    click.echo("    national-hub db upgrade: done")

    port = free_port()
    health_url = f"http://127.0.0.1:{port}/healthz"
    podman("rm", "-f", HUB_CONTAINER, check=False)
    step(f"national-hub serve in a container on :{port}")
    # No timer for the HEALTHCHECK (podman's needs systemd): it is run below by hand.
    podman.run("-d", "--name", HUB_CONTAINER, "--health-interval", "disable", *share,
               "-e", f"SIGNPOST_HEALTHCHECK_URL={health_url}", IMAGE_TAG,
               "national-hub", "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        for path in ("/healthz", "/readyz"):
            status, body = wait_for(f"http://127.0.0.1:{port}{path}")
            click.echo(f"    GET {path}: {status} {body.strip()[:120]}")
        probe = podman("healthcheck", "run", HUB_CONTAINER, check=False)
        if probe.returncode != 0:
            raise CheckFailed("podman healthcheck run: unhealthy", probe.stdout + probe.stderr)
        click.echo(f"    HEALTHCHECK {healthcheck[1:]}: healthy")
        # The same command must fail when nothing answers, or it proves nothing.
        dead = f"http://127.0.0.1:{free_port()}/healthz"
        refused = podman("exec", "-e", f"SIGNPOST_HEALTHCHECK_URL={dead}", HUB_CONTAINER,
                         *healthcheck[1:], check=False)
        if refused.returncode == 0:
            raise CheckFailed(f"the HEALTHCHECK passed against {dead}, where nothing listens")
        click.echo("    HEALTHCHECK against a port nobody serves: fails, as it should")
        [state] = json.loads(podman("container", "inspect", HUB_CONTAINER).stdout)
        pid = int(state["State"]["Pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        uids = process_uids(pid)
        if uids != [UID] * 4 or "national-hub" not in cmdline:
            raise CheckFailed(f"process {pid} ({cmdline}) runs as uids {uids}, not {UID}")
        click.echo(f"    host pid {pid} ({cmdline.strip()}): uid {UID} (real, effective, "
                   "saved, filesystem)")
    except BaseException:
        click.echo(podman("logs", "--tail", "40", HUB_CONTAINER, check=False).stderr)
        raise
    finally:
        podman("rm", "-f", "-t", "5", HUB_CONTAINER, check=False)


def check_compose() -> None:
    step("podman-compose config on deploy/compose.yaml")
    compose = [sys.executable, "-m", "podman_compose", "-f",
               str(ROOT / "deploy" / "compose.yaml"), "config"]
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    refused = subprocess.run(compose, capture_output=True, text=True, env=env, timeout=120)
    if refused.returncode == 0 or "POSTGRES_PASSWORD" not in refused.stderr:
        raise CheckFailed("compose.yaml is accepted without POSTGRES_PASSWORD",
                          refused.stdout[-2000:] + refused.stderr[-2000:])
    password = "image-check-password"
    out = subprocess.run(compose, capture_output=True, text=True, timeout=120,
                         env=env | {"POSTGRES_PASSWORD": password})
    if out.returncode != 0:
        raise CheckFailed("podman-compose config failed", out.stderr[-4000:])
    services = yaml.safe_load(out.stdout)["services"]
    if set(services) != COMPOSE_SERVICES:
        raise CheckFailed(f"compose services {sorted(services)}, expected "
                          f"{sorted(COMPOSE_SERVICES)}")
    hub = services["hub"]
    if hub["build"]["dockerfile"] != "deploy/Dockerfile" \
            or Path(hub["build"]["context"]).resolve() != ROOT:
        raise CheckFailed(f"the hub does not build deploy/Dockerfile: {hub['build']}")
    for name in COMPOSE_SERVICES - {"postgres", "prometheus"}:
        service = services[name]
        if service["image"] != hub["image"]:
            raise CheckFailed(f"{name} runs {service['image']}, not the hub's image")
        urls = [v for k, v in service["environment"].items() if "DATABASE_URL" in k]
        if not urls or not all(f":{password}@postgres:5432/" in url for url in urls):
            raise CheckFailed(f"{name}'s database URLs lack the password: {urls}")
    click.echo(f"    {len(services)} services, the hub, nodes and enrol on {hub['image']} "
               "built from deploy/Dockerfile; refused without POSTGRES_PASSWORD")


@click.command(help=__doc__.split("\n\n")[0].replace("``", ""))
@click.option("--base", "base", default=None, metavar="IMAGE",
              help="Build on this image instead of a bookworm made with debootstrap.")
@click.option("--mirror", default=None,
              help="Debian mirror for debootstrap (default: debootstrap's own).")
@click.option("--storage-driver", default="overlay", show_default=True,
              type=click.Choice(["overlay", "vfs"]),
              help="podman storage driver (vfs: slower, works on any filesystem).")
def main(base: str | None, mirror: str | None, storage_driver: str) -> None:
    if sys.platform != "linux":
        raise CheckFailed("podman builds Linux images on Linux only")
    WORK.mkdir(parents=True, exist_ok=True)
    ensure_tools(need_debootstrap=base is None)
    podman = Podman(storage_driver)
    started = time.monotonic()
    if base is None:
        base = make_base(podman, mirror)
    seconds = build(podman, base)
    config = check_image_config(podman)
    size = config["size"]
    assert isinstance(size, int)
    click.echo(f"    built {IMAGE_TAG} on {base} in {seconds:.0f} s; "
               f"{size / 1e6:.0f} MB; user {UID}; HEALTHCHECK present")
    step("the image's commands")
    check_help(podman)
    healthcheck = config["healthcheck"]
    assert isinstance(healthcheck, list)
    check_serve(podman, healthcheck)
    check_compose()
    click.echo(click.style(f"image check passed in {time.monotonic() - started:.0f} s "
                           f"(build {seconds:.0f} s, image {size / 1e6:.0f} MB)", fg="green"))


if __name__ == "__main__":
    main()
