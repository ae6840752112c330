"""Node → hub sync over HTTPS, with certificates from a throwaway CA (trustme).

A node that trusts the CA which issued the hub's certificate syncs; a node given
another CA (or none, i.e. the system's trust store) is refused before a single byte
of a batch leaves it, with an error naming the CA file, and the hub applies nothing.
Served both in-process and by the real console scripts with env configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trustme

from local_node.config import HubSection
from protocol import keys
from protocol.errors import ErrorCode, SignpostError
from server_common.config import ConfigError, TlsConfig
from server_common.tls import client_context, server_context
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.processes import Process, free_port, hub_process, node_env, script, wait_ready

ESX = "E10000011"


@dataclasses.dataclass(frozen=True)
class Pki:
    ca_file: Path  # the CA that issued the servers' certificate
    other_ca_file: Path  # a CA that issued nothing here
    cert_file: Path  # certificate chain for 127.0.0.1 and localhost
    key_file: Path

    @property
    def tls(self) -> dict[str, object]:
        return {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca, other = trustme.CA(), trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    pki = Pki(folder / "ca.pem", folder / "other-ca.pem", folder / "server.pem",
              folder / "server.key")
    ca.cert_pem.write_to_path(str(pki.ca_file))
    other.cert_pem.write_to_path(str(pki.other_ca_file))
    pki.cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(pki.key_file))
    return pki


# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds([ESX], 60, seed=5)


def trusting(node: Node, ca_file: Path | None) -> Node:
    config = dataclasses.replace(node.config,
                                 hub=dataclasses.replace(node.config.hub, ca_file=ca_file))
    return dataclasses.replace(node, config=config)


async def nothing_applied(hub: Hub) -> None:
    assert await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1", ESX) == 0
    assert await hub.fetchval("SELECT count(*) FROM batches") == 0
    assert await hub.fetchval("SELECT count(*) FROM records") == 0


async def test_node_syncs_over_tls_only_with_the_hubs_ca(make_database: DatabaseFactory,
        tmp_path: Path,
                                                          pki: Pki, feeds: Path) -> None:
    async with running_hub(await make_database(), tmp_path, tls=pki.tls) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        assert hub.url.startswith("https://127.0.0.1:")
        assert (await node.ingest("education", feeds / ESX / "education.csv")).errors == []

        for ca_file in (pki.other_ca_file, None):
            with pytest.raises(SignpostError) as refused:
                await trusting(node, ca_file).publish()
            assert refused.value.code is ErrorCode.TLS_UNTRUSTED
            assert not refused.value.retryable  # retrying cannot fix a CA: no backoff loop
            where = f"hub.ca_file {ca_file}" if ca_file else "the system's trusted CAs"
            assert f"does not verify against {where}" in refused.value.message
            assert "unable to get local issuer certificate" in refused.value.message
            await nothing_applied(hub)
            assert await node.fetchval("SELECT count(*) FROM sent_batches") == 0

        report = await trusting(node, pki.ca_file).publish()
        assert report.records_sent > 0 and report.records_rejected == 0
        assert await hub.digests(ESX) == await node.projection()
        assert await hub.fetchval(
            "SELECT head_seq FROM heartbeats WHERE council_code = $1", ESX) == \
            await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1", ESX)


def test_tls_settings_are_checked_at_start_up(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls.cert_file and tls.key_file must be set together"):
        TlsConfig(cert_file=pki.cert_file)
    with pytest.raises(ConfigError, match=r"tls.key_file: no such file: .*missing.key"):
        server_context(TlsConfig(pki.cert_file, tmp_path / "missing.key"))
    stranger = trustme.CA().issue_cert("127.0.0.1")
    stranger.private_key_pem.write_to_path(str(tmp_path / "stranger.key"))
    with pytest.raises(ConfigError, match="not a certificate chain and its matching key"):
        server_context(TlsConfig(pki.cert_file, tmp_path / "stranger.key"))
    (tmp_path / "junk.pem").write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hub.ca_file .*junk.pem: not a PEM CA certificate"):
        client_context(tmp_path / "junk.pem")
    with pytest.raises(ConfigError, match=r"hub.ca_file is set but hub.url is not https"):
        HubSection(url="http://hub.example", ca_file=pki.ca_file)
    assert server_context(TlsConfig()) is None  # plain HTTP when [tls] is empty


def _get(url: str, ca_file: Path) -> int:
    with urllib.request.urlopen(url, timeout=10,
                                context=ssl.create_default_context(cafile=ca_file)) as resp:
        return int(resp.status)


async def publish_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [script("local-node"), "publish", "--once"],
                                   text=True, capture_output=True, env=env, timeout=120)


@pytest.mark.slow
async def test_console_scripts_serve_https_from_env_config(make_database: DatabaseFactory,
        tmp_path: Path,
                                                           pki: Pki, feeds: Path) -> None:
    hub_db, node_db = await make_database(), await make_database()
    # In-process hub only to migrate and enrol; the real hub runs as a process below.
    async with running_hub(hub_db, tmp_path) as setup_hub, \
            running_node(ESX, node_db, tmp_path, setup_hub) as node:
        await node.ingest("education", feeds / ESX / "education.csv")
        await setup_hub.server.close()

        port, node_port = free_port(), free_port()
        hub_url = f"https://localhost:{port}"
        hub = hub_process(hub_db, port, tmp_path)
        hub.env |= {"NATIONAL_HUB__TLS__CERT_FILE": str(pki.cert_file),
                    "NATIONAL_HUB__TLS__KEY_FILE": str(pki.key_file)}
        env = node_env(ESX, node_db, node.config.key_file, hub_url,
                       keys.public_path_for(setup_hub.config.hub.key_file))
        env |= {"LOCAL_NODE__TLS__CERT_FILE": str(pki.cert_file),
                "LOCAL_NODE__TLS__KEY_FILE": str(pki.key_file)}
        server = Process([script("local-node"), "serve", "--no-publish", "--port",
                          str(node_port)], env, tmp_path / "node.log")
        try:
            hub.start()
            server.start()
            wait_ready(hub_url, ca_file=pki.ca_file)
            wait_ready(f"https://127.0.0.1:{node_port}", ca_file=pki.ca_file)
            assert _get(f"https://localhost:{node_port}/healthz", pki.ca_file) == 200
            with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
                _get(f"{hub_url}/healthz", pki.other_ca_file)

            wrong = await publish_once(env | {"LOCAL_NODE__HUB__CA_FILE": str(pki.other_ca_file)})
            assert wrong.returncode == 1, wrong.stderr
            assert f"tls_untrusted: the hub at {hub_url} is not trusted" in wrong.stderr
            assert str(pki.other_ca_file) in wrong.stderr
            await nothing_applied(setup_hub)

            right = await publish_once(env | {"LOCAL_NODE__HUB__CA_FILE": str(pki.ca_file)})
            assert right.returncode == 0, right.stderr
            assert "0 rejected by the hub" in right.stdout
        finally:
            server.kill()
            hub.kill()
        assert await setup_hub.digests(ESX) == await node.projection()
