"""A gateway on ``rediss://``: its own connections (pub/sub, publish pipes; see
gateway.broker.connection) and redis-py's (history, records) all speak TLS to a real redis-server,
verified against the CA the URL names; a server the CA does not vouch for is refused."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.broker import create_broker
from gateway.errors import BrokerUnavailable
from gateway.settings import Settings
from publisher.errors import BackendUnavailable
from publisher.wire import stream_key
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


def _write_pki(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / f"{name}-{p}.pem" for p in ("ca", "cert", "key"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture
def tls_redis(tmp_path: Path):
    """A redis-server answering TLS on a port of its own: (server, that port, a rediss URL)."""
    ca, cert, key = _write_pki(tmp_path, "server")
    server, tls_port = RedisServer(password="tls-pass"), free_port()
    server.extra_args = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    server.start()
    yield server, tls_port, f"rediss://:tls-pass@127.0.0.1:{tls_port}/2?ssl_ca_certs={ca}"
    server.close()


def _tls_clients(server: RedisServer, tls_port: int) -> list[str]:
    with server.client() as client:
        listing = client.execute_command("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return [line for line in text.splitlines() if f"laddr=127.0.0.1:{tls_port}" in line]


async def test_a_gateway_on_rediss_publishes_delivers_and_resumes_over_tls(
    tls_redis, start_gateway
):
    server, tls_port, url = tls_redis
    gateway = start_gateway(url)
    async with sse_connect(gateway.url + "/subscribe/tls") as stream:
        await stream.next_frame()
        async with httpx.AsyncClient() as http:
            reply = await http.post(gateway.url + "/publish/tls", json={"over": "tls"})
        assert reply.status_code == 202, reply.text
        event = await stream.next_event()
    assert event.json() == {"over": "tls"} and event.id == reply.json()["id"]
    # The pub/sub link, the publish pipe and redis-py's pool: TLS clients, in database 2.
    clients = _tls_clients(server, tls_port)
    assert any(" flags=P " in c for c in clients), clients  # P: a pub/sub connection
    assert len(clients) >= 3 and all(" db=2 " in c for c in clients), clients
    with server.client() as client:
        client.execute_command("SELECT", 2)
        assert client.xlen(stream_key("tls")) == 1
    async with sse_connect(gateway.url + "/subscribe/tls", last_event_id="0-0") as resumed:
        assert (await resumed.next_event()).json() == {"over": "tls"}  # history read over TLS


async def test_a_server_the_url_s_ca_does_not_vouch_for_is_refused(tls_redis, tmp_path):
    _, _, url = tls_redis
    other_ca, _, _ = _write_pki(tmp_path, "other")
    broker = create_broker(
        Settings(redis_url=url.split("?")[0] + f"?ssl_ca_certs={other_ca}", redis_timeout=0.5)
    )
    await broker.start(wait=1.0)
    try:
        assert not broker.ready
        with pytest.raises((BrokerUnavailable, BackendUnavailable)):
            await broker.publish("tls", [("", b"1")])
    finally:
        await broker.close()
