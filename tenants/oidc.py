"""OpenID Connect single sign-on (mozilla-django-oidc): the identity provider says who the
user is and, in one claim (``OIDC_TENANT_CLAIM``, default ``groups``), which tenants they
belong to with which role, as ``"<tenant-slug>:<role>"`` values (``"acme:operator"``).

Accounts are matched by the provider's issuer and subject (``sub``), never by e-mail, so a
provider cannot sign in as a local account that happens to share an address. At each sign-in
the user's memberships become what the claim says (``services.oidc_memberships_sync``); a
user the claim gives no known tenant cannot sign in.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from . import services
from .models import OidcIdentity

logger = logging.getLogger(__name__)


class TenantOIDCBackend(OIDCAuthenticationBackend):
    def get_payload_data(self, token, key):
        payload = super().get_payload_data(token, key)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was not issued to this client")
        issuer = getattr(settings, "OIDC_OP_ISSUER", "")
        if issuer and payload.get("iss") != issuer:
            raise SuspiciousOperation("The ID token comes from another issuer")
        self._issuer = payload.get("iss") or issuer
        return payload

    def _tenant_roles(self, claims: dict[str, Any]) -> dict:
        return services.oidc_tenant_roles(claims.get(settings.OIDC_TENANT_CLAIM))

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not claims.get("sub"):
            return False
        if not self._tenant_roles(claims):
            logger.warning(
                "OIDC sign-in refused: the %r claim names no tenant of this platform", settings.OIDC_TENANT_CLAIM
            )
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):
        identity = OidcIdentity.objects.filter(issuer=getattr(self, "_issuer", ""), subject=claims["sub"])
        return self.UserModel.objects.filter(pk__in=identity.values("user_id"))

    def create_user(self, claims: dict[str, Any]):
        return services.oidc_user_create(
            issuer=getattr(self, "_issuer", ""), claims=claims, tenant_roles=self._tenant_roles(claims)
        )

    def update_user(self, user, claims: dict[str, Any]):
        return services.oidc_user_update(user=user, claims=claims, tenant_roles=self._tenant_roles(claims))
