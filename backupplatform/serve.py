"""The ASGI server of ``make run``: one uvicorn process listening on the main port and on the
jobs API's port (api-layer.md's examples use ``localhost:5000``; backupplatform/listeners.py
routes what arrives there by the jobs API's URLconf).

``python -m backupplatform.serve --host 127.0.0.1 --port 8000 --jobs-port 5000``
(``--jobs-port 0``: the main port only).
"""

from __future__ import annotations

import argparse
import os
import socket

import uvicorn


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backupplatform.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--jobs-port", type=int, default=5000, help="the jobs API's listener (0: none)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    sockets = [bind(args.host, args.port)]
    if args.jobs_port:
        sockets.append(bind(args.host, args.jobs_port))
        # Set before the application (and so the settings) is loaded.
        os.environ["JOBS_API_PORTS"] = ",".join(
            dict.fromkeys([*filter(None, os.environ.get("JOBS_API_PORTS", "").split(",")), str(args.jobs_port)])
        )
    config = uvicorn.Config("backupplatform.asgi:application", lifespan="off", log_level=args.log_level)
    print(
        f"[platform] listening on http://{args.host}:{args.port}/"
        + (f" and, for the jobs API, http://{args.host}:{args.jobs_port}/" if args.jobs_port else ""),
        flush=True,
    )
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
