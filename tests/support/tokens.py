"""A token issuer for the registry's ``auth.token`` mode, run by the test suite.

It answers ``GET /token?service=…&scope=…`` like Docker Hub's auth server: it checks Basic
credentials, grants the pull/push actions the user may have, and signs an RS256 JWT with an
``x5c`` header holding a self-signed certificate that the registry trusts (``rootcertbundle``).
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.serving import QuietHandler, serve, shut_down

SERVICE = "imagelock-test-registry"
ISSUER = "imagelock-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenIssuer:
    workdir: Path
    users: dict[str, str]  # username → password; anonymous callers get nothing
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # OAuth2 refresh token → username
    expires_in: int = 300
    requests: Counter[str] = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagelock test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = self.workdir / "token-issuer.pem"
        self.bundle.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def realm(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def registry_auth_yaml(self) -> str:
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.bundle}\n"
        )

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and subject:
                access.append(
                    {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a in ("pull", "push")]}
                )
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + self.expires_in, "nbf": now - 10,
            "iat": now, "jti": str(uuid.uuid4()), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(QuietHandler):
            def _reply(self, status: int, document: dict[str, object] | None = None) -> None:
                self.send_json(status, document or {})

            def do_POST(self) -> None:
                """The OAuth2 refresh-token grant that ``identitytoken`` credentials use."""
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                issuer.requests["POST " + form.get("grant_type", [""])[0]] += 1
                user = issuer.refresh_tokens.get(form.get("refresh_token", [""])[0])
                if form.get("grant_type") != ["refresh_token"] or user is None or form.get("service") != [SERVICE]:
                    self._reply(401, {"error": "invalid_grant"})
                    return
                token = issuer.token(user, form.get("scope", []))
                self._reply(200, {"access_token": token, "expires_in": issuer.expires_in})

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                issuer.requests[self.headers.get("authorization", "anonymous").split(" ")[0]] += 1
                subject = ""
                authorization = self.headers.get("authorization", "")
                if authorization.startswith("Basic "):
                    user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
                    if issuer.users.get(user) != password:
                        self._reply(401, {"details": "incorrect username or password"})
                        return
                    subject = user
                token = issuer.token(subject, query.get("scope", []))
                self._reply(200, {"token": token, "expires_in": issuer.expires_in})

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None
