"""TLS on both ports, with a throwaway self-signed certificate (openssl)."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import httpx
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from tests.serving.conftest import running_server, runtime_stub

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


async def test_grpc_and_http_over_tls(tiny_package, certificate):
    cert, key = certificate
    async with running_server(tiny_package, tls_cert=str(cert), tls_key=str(key), token="t") as server:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{server.grpc_port}", credentials) as channel:
            reply = await runtime_stub(channel).ListModels(pb.ListModelsRequest(),
                                                           metadata=[("authorization", "Bearer t")])
            assert reply.models
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await runtime_stub(plain).ListModels(pb.ListModelsRequest(), timeout=2)
        async with httpx.AsyncClient(base_url=f"https://localhost:{server.http_port}", verify=str(cert)) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/v1/models", headers={"authorization": "Bearer t"})).status_code == 200
