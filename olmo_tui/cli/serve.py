"""`olmo-tui serve`: the same app in a browser, behind a secret token.

textual-serve (Textualize's own server) starts one `olmo-tui` process per browser tab and
relays its terminal over a websocket; the runs launched there are the same detached runs as
from a terminal. textual-serve has no access control, so every route lives under a random
path segment (`/<token>/`): the printed URL carries it, anything else is 403, like a notebook
server's token. The token is never logged: aiohttp's access log (which writes request paths)
is off, and textual-serve's own start-up line names only the bare address.

Exit codes: 0 stopped with Ctrl-C, 2 bad arguments (a non-local --host without
--allow-remote, a port out of range), 3 the address could not be bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import shlex
import socket
import sys
from typing import List, Optional

from ..core import exit_codes

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="olmo-tui serve",
        description="Serve the app to a browser. Open the printed URL (it carries the access token).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than this machine (anyone who can reach the port and has the URL can launch runs)",
    )
    return parser.parse_args(argv)


def url_host(host: str) -> str:
    """The host part of the printed URL: a name a browser can reach for a wildcard bind."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def app_command() -> str:
    """The command textual-serve runs per browser tab (it uses a shell: every part quoted)."""
    return shlex.join([sys.executable, "-m", "olmo_tui"])


def build_server(host: str, port: int, token: str):
    """The textual-serve Server with every route moved under `/<token>/`."""
    from aiohttp import web
    from textual_serve.server import Server

    class TokenServer(Server):
        async def _make_app(self) -> web.Application:
            inner = await super()._make_app()
            outer = web.Application()
            outer.add_subapp(f"/{token}/", inner)

            async def refuse(request: web.Request) -> web.Response:
                return web.Response(
                    status=403,
                    text="403: open the URL that `olmo-tui serve` printed (it carries the access token)\n",
                )

            outer.router.add_route("*", "/{tail:.*}", refuse)
            return outer

        def serve(self, debug: bool = False) -> None:
            import asyncio
            import signal

            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.add_signal_handler(signal.SIGINT, self.request_exit)
                loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            except NotImplementedError:
                pass
            # access_log=None: the access log writes each request's path, which holds the token.
            web.run_app(
                self._make_app(), host=self.host, port=self.port, handle_signals=False,
                loop=loop, print=lambda *args: None, access_log=None,
            )

    from rich.console import Console

    server = TokenServer(
        app_command(), host=host, port=port, title="olmo-tui", public_url=f"http://{url_host(host)}:{port}"
    )
    server.console = Console(stderr=True)  # its banner and log are narration; stdout holds the URL
    return server


def cmd_serve(argv: List[str]) -> int:
    args = parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"olmo-tui serve: --port {args.port} is out of range (1-65535)", file=sys.stderr)
        return exit_codes.USAGE
    if not is_local(args.host) and not args.allow_remote:
        print(
            f"olmo-tui serve: --host {args.host} is reachable from other machines; add --allow-remote to "
            "serve there, or reach 127.0.0.1 over an SSH tunnel (docs/GUIDE.md: The app in a browser)",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    try:  # a taken port is one line before textual-serve prints its banner
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as error:
        print(f"olmo-tui serve: cannot bind {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return exit_codes.LAUNCH
    if not is_local(args.host):
        print(
            f"warning: serving on {args.host}: anyone who can reach port {args.port} and has the URL can "
            "launch and cancel runs as you. The traffic is not encrypted: prefer an SSH tunnel.",
            file=sys.stderr,
        )
    token = secrets.token_urlsafe(24)
    server = build_server(args.host, args.port, token)
    # stdout is data: the one URL to open, flushed so a script can read it at once.
    print(f"http://{url_host(args.host)}:{args.port}/{token}/", flush=True)
    server.serve()
    return exit_codes.OK


def main(argv: Optional[List[str]] = None) -> int:
    return cmd_serve(list(sys.argv[1:] if argv is None else argv))
