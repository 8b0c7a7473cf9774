"""The emulator on a real socket: HTTPS from a throwaway CA, one thread per connection."""

from __future__ import annotations

import ipaddress
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from stand_ins.graph_emulator.app import EmulatorApp
from stand_ins.graph_emulator.clock import EmulatorClock
from stand_ins.graph_emulator.errors import DropConnection
from stand_ins.graph_emulator.faults import Faults, make_faults
from stand_ins.graph_emulator.identity import SignInRecord
from stand_ins.graph_emulator.pim import PimState
from stand_ins.graph_emulator.tenant import Tenant, default_tenant
from stand_ins.graph_emulator.token import SecurityTokenService

logger = logging.getLogger(__name__)
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class _RequestHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop,
        # so a slow or failing client never holds up the others.
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        if isinstance(error, DropConnection):
            # Close the socket without writing anything: the client sees a dropped connection.
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug(message, *args)


class _Server(ThreadedWSGIServer):
    # Keep-alive connections must not make stop() wait for their threads.
    block_on_close = False
    request_queue_size = 512

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)


def _certificate_names(host: str, extra: Sequence[str]) -> list[str]:
    names = ["127.0.0.1", "localhost", "::1", *extra]
    if host not in _WILDCARD_HOSTS and host not in names:
        names.append(host)
    return names


def _url_host(host: str) -> str:
    if host in _WILDCARD_HOSTS:
        return "127.0.0.1"
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class GraphEmulator:
    """Microsoft Graph PIM + Entra token endpoint on ``https://{host}:{port}``."""

    def __init__(
        self,
        tenant: Tenant | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ca_path: Path | str | None = None,
        clock: Callable[[], datetime] | None = None,
        faults: Faults | Mapping[str, Any] | None = None,
        hostnames: Sequence[str] = (),
    ) -> None:
        self.tenant = tenant or default_tenant()
        self.host, self._port = host, port
        self._requested_ca_path = Path(ca_path) if ca_path is not None else None
        self._hostnames = tuple(hostnames)
        self.clock = EmulatorClock(clock)
        self.faults = make_faults(faults)
        self.state = PimState(self.tenant, self.clock, self.faults)
        self.sts = SecurityTokenService(self.tenant, clock=self.clock)
        self.app = EmulatorApp(self.state, self.sts, self.faults, self.clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._temp_dir: Path | None = None
        self._ca_path: Path | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        ca = trustme.CA(organization_name="pimbot Graph emulator")
        self._ca_path = self._write_ca(ca)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*_certificate_names(self.host, self._hostnames)).configure_cert(context)
        try:
            server = _Server(self.host, self._port, self.app, handler=_RequestHandler)
        except SystemExit:
            # werkzeug prints the reason and exits when it cannot bind; a library must not.
            raise OSError(f"cannot listen on {self.host}:{self._port}") from None
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.ssl_context = context
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="graph-emulator",
            daemon=True,
        )
        self._thread.start()
        logger.info("Graph emulator listening on %s", self.url)
        return self

    def _write_ca(self, ca: trustme.CA) -> Path:
        path = self._requested_ca_path
        if path is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="pimbot-graph-emulator-"))
            path = self._temp_dir / "ca.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(str(path))
        return path

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- where to reach it --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    @property
    def beta_url(self) -> str:
        """Graph beta: v1.0 mirrored, plus the approvals of Entra role activations."""
        return f"{self.url}/beta"

    @property
    def authority_host(self) -> str:
        return self.url

    @property
    def ca_path(self) -> Path:
        if self._ca_path is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._ca_path

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this emulator's CA (for httpx ``verify=``)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def env(self) -> dict[str, str]:
        """The environment a pimbot process needs to use this emulator."""
        return {
            "AZURE_TENANT_ID": self.tenant.tenant_id,
            "AZURE_CLIENT_ID": self.tenant.app.client_id,
            "AZURE_CLIENT_SECRET": self.tenant.app.client_secret or "",
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "PIMBOT_GRAPH_URL": self.graph_url,
            "PIMBOT_CA_BUNDLE": str(self.ca_path),
        }

    # --- test conveniences --------------------------------------------------------------------

    def mint_token(
        self,
        *,
        user: str | None = None,
        permissions: Sequence[str] | None = None,
        expires_in: int = 3600,
        mfa: bool = False,
        acrs: Sequence[str] = (),
    ) -> str:
        """A Graph token without the token endpoint; ``user`` (id or UPN) makes it delegated."""
        # A delegated token carries what a user sign-in would: amr "mfa" and acrs values.
        user_id = None
        if user is not None:
            found = self.tenant.find_user(user)
            if found is None:
                raise ValueError(f"no user {user!r} in the tenant")
            user_id = found.id
        amr = ("pwd", "mfa") if mfa else ("pwd",)
        return self.sts.mint(
            user_id=user_id, permissions=permissions, expires_in=expires_in, amr=amr, acrs=acrs
        )

    def update_user(self, ref: str, **changes: Any) -> None:
        """Change a user in the running tenant, as an admin would in Entra (e.g.
        ``account_enabled=False``); every endpoint sees the change at once."""
        user = self.tenant.find_user(ref)
        if user is None:
            raise ValueError(f"no user {ref!r} in the tenant")
        users = tuple(
            u.model_copy(update=changes) if u.id == user.id else u for u in self.tenant.users
        )
        self.update_tenant(users=users)

    def update_tenant(self, **changes: Any) -> None:
        """Replace top-level parts of the running tenant, e.g. ``sign_in=SignInSettings(
        require_mfa=False)`` or ``conditional_access_policies=()``; seen everywhere at once."""
        tenant = self.tenant.model_copy(update=changes)
        # One tenant object is shared by the PIM state, the token service and the Graph API.
        self.tenant = self.state.tenant = self.sts.tenant = self.app.graph.tenant = tenant

    def update_sign_in(self, **changes: Any) -> None:
        """Change the tenant's sign-in settings: ``require_mfa``, ``block_device_code``..."""
        self.update_tenant(sign_in=self.tenant.sign_in.model_copy(update=changes))

    @property
    def sign_ins(self) -> list[SignInRecord]:
        """The sign-in log: every interactive sign-in attempt and refresh, oldest first."""
        return self.sts.identity.sign_ins

    def advance_clock(self, seconds: float) -> datetime:
        """Move emulator time forward, as ``POST /_emulator/clock`` does."""
        return self.clock.advance(timedelta(seconds=seconds))
