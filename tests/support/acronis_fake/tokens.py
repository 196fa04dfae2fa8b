"""The fake's token endpoint and bearer checks (§1): client credentials with Basic auth,
and customer-scoped tokens through the jwt-bearer grant."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from tests.support.acronis_fake.protocol import ApiError, domain_for
from tests.support.acronis_fake.query import Query

TOKEN_PATH = "/api/2/idp/token"
TOKEN_DOMAIN = "PlatformAccountServer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenEndpoint:
    """Issues and checks tokens; ``FakeAcronis`` holds the state it reads."""

    client_id: str
    client_secret: str
    token_lifetime: float
    tokens: dict[str, float]
    token_scopes: dict[str, str]
    root_tenant_uuid: str
    _lock: threading.RLock
    tenant_ids: Callable[[str], set[str] | None]

    def _check_bearer(self, header: str, path: str) -> str | None:
        """Refuse unknown or expired tokens; return the token's customer scope, if any."""
        scheme, _, token = header.partition(" ")
        with self._lock:
            expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
            scope = self.token_scopes.get(token)
        if expires is None:
            raise ApiError(401, "Unauthorized", "Access token is invalid.", domain=domain_for(path))
        if expires <= time.time():
            raise ApiError(401, "AuthenticationTimeout", "Access token has expired.", domain=domain_for(path))
        return scope

    def _issue_token(self, header: str, form: Query) -> dict:
        grant = form.get("grant_type")
        if grant == ["client_credentials"]:
            self._check_basic(header)
            if "scope" in form:
                # Section 1 documents scoped tokens only through the jwt-bearer grant; the
                # fake refuses the undocumented shortcut so the client cannot rely on it.
                raise ApiError(
                    400,
                    "invalid_scope",
                    "Use the jwt-bearer grant for a scope.",
                    domain=TOKEN_DOMAIN,
                )
            return self._new_token(None)
        if grant == [JWT_BEARER]:
            return self._new_token(self._check_assertion(header, form))
        raise ApiError(400, "invalid_grant", "Unsupported grant_type.", domain=TOKEN_DOMAIN)

    def _check_basic(self, header: str) -> None:
        scheme, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id, _, client_secret = decoded.partition(":")
        valid = (
            scheme.lower() == "basic"
            and hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        )
        if not valid:
            raise ApiError(401, 1002, "Invalid client credentials.", domain=TOKEN_DOMAIN)

    def _check_assertion(self, header: str, form: Query) -> str:
        """A customer-scoped token request: the assertion is a live unscoped token of
        ours (also sent as the bearer), the scope names a customer this client manages."""
        assertion = (form.get("assertion") or [""])[0]
        scheme, _, bearer = header.partition(" ")
        with self._lock:
            expires = self.tokens.get(assertion)
            scoped = assertion in self.token_scopes
        live = expires is not None and expires > time.time() and not scoped
        if not live or scheme.lower() != "bearer" or bearer != assertion:
            raise ApiError(401, "Unauthorized", "Invalid assertion.", domain=TOKEN_DOMAIN)
        scope = (form.get("scope") or [""])[0]
        prefix = "urn:acronis.com:tenant-id:"
        customer = scope[len(prefix) :].lower() if scope.startswith(prefix) else ""
        if not customer or customer == self.root_tenant_uuid or self.tenant_ids(customer) is None:
            raise ApiError(403, "AccessDenied", f"No access to scope {scope!r}.", domain=TOKEN_DOMAIN)
        return customer

    def _new_token(self, scope: str | None) -> dict:
        token = "fake-at-" + secrets.token_urlsafe(24)
        expires = time.time() + float(self.token_lifetime)
        with self._lock:
            self.tokens[token] = expires
            if scope:
                self.token_scopes[token] = scope
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_on": int(expires),
            "id_token": "fake-id-" + secrets.token_urlsafe(16),
        }
