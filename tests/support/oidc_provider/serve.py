"""``python -m tests.support.oidc_provider.serve --port P --client-id ID --client-secret S
--redirect-uri URI --user NAME:PASSWORD:GROUP,GROUP ...``: migrate a fresh provider database,
create the users and the client, print ``READY`` and serve until terminated."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--user", action="append", default=[])
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    for spec in args.user:
        name, password, groups = [*spec.split(":", 2), ""][:3]
        user = User.objects.create_user(name, email=f"{name}@idp.example", password=password, first_name=name.title())
        for group in filter(None, groups.split(",")):
            user.groups.add(Group.objects.get_or_create(name=group)[0])
    Application.objects.create(
        name="platform",
        client_id=args.client_id,
        client_secret=args.client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=args.redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    server = make_server(
        "127.0.0.1", args.port, get_wsgi_application(), server_class=_Server, handler_class=_QuietHandler
    )
    print("READY", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
