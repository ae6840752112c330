"""deploy/systemd: the units a council installs to run its node on a plain server.
systemd's own `systemd-analyze verify` loads them (inside a throw-away root holding
the units and a stand-in for the installed console script, so the check does not depend
on this machine's /opt) and must have nothing to say; `systemd-analyze security
--offline` rates their hardening. The structure is checked as well: one unit serves,
one publishes, both unprivileged, with the same config and state."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from local_node.config import ENV_PREFIX

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVE, PUBLISH = "signpost-node.service", "signpost-node-publish.service"
# systemd's exposure score × 10: 15 is "OK" (1.5 of 10); an unhardened service is ~96.
EXPOSURE_THRESHOLD = 15
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
    "SystemCallArchitectures": "native", "UMask": "0077",
}


def directives(name: str) -> dict[str, dict[str, list[str]]]:
    """section → key → values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        sections[section].setdefault(key, []).append(value)
    return sections


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return found


def test_units_serve_and_publish_unprivileged_with_one_config() -> None:
    serve, publish = directives(SERVE)["Service"], directives(PUBLISH)["Service"]
    assert serve["ExecStart"] == ["/opt/signpost/bin/local-node serve --no-publish"]
    assert serve["ExecStartPre"] == ["/opt/signpost/bin/local-node db upgrade"]
    assert publish["ExecStart"] == ["/opt/signpost/bin/local-node publish"]
    assert PUBLISH not in " ".join(directives(SERVE)["Unit"].get("After", []))
    assert SERVE in " ".join(directives(PUBLISH)["Unit"]["After"])
    for service in (serve, publish):
        assert service["User"] == ["signpost"] and service["Group"] == ["signpost"]
        assert service["Environment"] == [f"{ENV_PREFIX}_CONFIG=/etc/signpost/node.toml"]
        assert service["StateDirectory"] == ["signpost"]
        assert service["WorkingDirectory"] == ["/var/lib/signpost"]
        assert service["Restart"][0] in ("on-failure", "always")
        for key, value in HARDENING.items():
            assert service.get(key) == [value], key
    for name in (SERVE, PUBLISH):
        assert directives(name)["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify_has_nothing_to_say(tmp_path: Path) -> None:
    tool = systemd_analyze()
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in (SERVE, PUBLISH):
        shutil.copy(UNITS / unit, units / unit)
    # The units name /opt/signpost/bin/local-node, which verify insists is executable.
    binary = tmp_path / "opt" / "signpost" / "bin" / "local-node"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n", encoding="utf-8")
    binary.chmod(0o755)
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr" / "lib" / "systemd" / "system",
                    symlinks=True)
    result = subprocess.run([tool, "verify", f"--root={tmp_path}",
                             str(units / SERVE), str(units / PUBLISH)],
                            capture_output=True, text=True, timeout=120)
    # verify exits 0 even for unknown keys and bad values, so any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hardening_is_rated_ok_by_systemd() -> None:
    tool = systemd_analyze()
    result = subprocess.run([tool, "security", "--offline=yes", "--no-pager",
                             f"--threshold={EXPOSURE_THRESHOLD}", SERVE, PUBLISH],
                            cwd=UNITS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
