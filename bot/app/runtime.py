"""The composition root: the only place that builds engines, clients and apps from Settings."""

from __future__ import annotations

import logging
import signal
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.graph import GraphPimClient, build_pim_client, build_sign_in
from bot.adapters.sealing import FernetSealer
from bot.app.clock import SystemClock
from bot.app.concurrency import ContextPreservingExecutor
from bot.app.logs import keep_request_bodies_out_of_logs
from bot.app.metrics import Metrics, MetricsNotifier
from bot.app.policy_file import PolicyFile, load_policy_file
from bot.app.scheduler import Sweeper, build_scheduler
from bot.app.settings import Settings, redact_url
from bot.domain.elevation import AuditEntry
from bot.domain.errors import ConfigurationError
from bot.domain.ports import Clock, IdentityLink, PimClient, SlackDirectory
from bot.domain.rules import DeploymentMode
from bot.use_cases.approvers import DirectoryApproverResolver
from bot.use_cases.catalog import CachedAccessPolicies, CachedRulesSource, ReadCachingPimClient
from bot.use_cases.delegated import SignInOutcome, complete_sign_in
from bot.use_cases.identity import EntraAccounts, Installation, identify
from bot.use_cases.services import Ports
from bot.use_cases.signing_in import Delegation
from handlers import register_handlers
from handlers.context import SlackDeps
from handlers.directory import CachedSlackDirectory, SlackWebDirectory
from handlers.http import BackgroundHttpServer, WSGIApp, make_http_app
from handlers.middleware import observe_slack_calls
from handlers.notifier import SlackNotifier
from handlers.signin_messages import SlackSignInMessages
from storage.audit_chain import ChainReport
from storage.database import (
    current_revision,
    head_revision,
    is_up_to_date,
    make_engine,
    make_session_factory,
    upgrade,
)
from storage.repository import AuditQuery, AuditRecord
from storage.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)


def load_policy(settings: Settings) -> PolicyFile:
    return load_policy_file(settings.policy_file)


def open_database(settings: Settings) -> Engine:
    """An engine on a schema at head. The default SQLite file is created and migrated here;
    any other database must be migrated explicitly (``pimbot db upgrade``) so that several
    replicas never race to change the schema."""
    url = settings.effective_database_url()
    engine = make_engine(url)
    try:
        if is_up_to_date(engine):
            return engine
        if settings.database_url is None:
            upgrade(engine)
            return engine
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            [f"database {redact_url(url)}: cannot connect ({type(exc.__cause__ or exc).__name__})"]
        ) from None
    raise ConfigurationError(
        [
            f"database {redact_url(url)} is at revision "
            f"{current_revision(engine)}, pimbot needs "
            f"{head_revision(engine)}: run `pimbot db upgrade`"
        ]
    )


def upgrade_database(settings: Settings) -> str | None:
    url = settings.effective_database_url()
    engine = make_engine(url)
    try:
        upgrade(engine)
        return current_revision(engine)
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            [f"database {redact_url(url)}: cannot upgrade ({type(exc.__cause__ or exc).__name__})"]
        ) from None
    finally:
        engine.dispose()


def read_audit(settings: Settings, query: AuditQuery) -> list[AuditRecord]:
    """The audit entries ``query`` asks for, oldest first, with names, reason and ticket."""
    engine = open_database(settings)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return uow.audit.search(query)
    finally:
        engine.dispose()


def verify_audit(settings: Settings) -> ChainReport:
    """Walk the audit trail's hash chain (``pimbot audit verify``)."""
    engine = open_database(settings)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return uow.audit.verify()
    finally:
        engine.dispose()


def link_identity(settings: Settings, slack_team: str, slack_user: str, entra_id: str) -> None:
    engine = open_database(settings)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            uow.identities.link(
                IdentityLink(slack_team, slack_user, entra_id, "operator", SystemClock().now())
            )
            uow.audit.add(
                AuditEntry(
                    None,
                    "operator",
                    "identity_linked",
                    None,
                    None,
                    SystemClock().now(),
                    f"{slack_team}/{slack_user} -> {entra_id}",
                )
            )
            uow.commit()
    finally:
        engine.dispose()


# --- the Slack bot ---------------------------------------------------------------------------


@dataclass
class SlackRuntime:
    """Everything ``pimbot run`` (and the demo, and the tests) need, wired together."""

    app: App
    deps: SlackDeps
    web: WebClient
    engine: Engine
    registry: CollectorRegistry
    sweeper: Sweeper
    listeners: ThreadPoolExecutor
    closers: list[Callable[[], None]]
    metrics: Metrics
    settings: Settings

    def http_app(
        self, *, events: bool = True, ops: bool = True, sign_in: bool | None = None
    ) -> WSGIApp:
        """Slack's endpoint (``events``) and/or the health check and metrics (``ops``), and
        the sign-in callback (``sign_in``; by default with Slack's endpoint, as both face the
        outside) when delegated mode is on."""
        secret = self.settings.slack_signing_secret
        ports = self.deps.ports
        wanted = events if sign_in is None else sign_in
        callback = (
            partial(_finish_sign_in, ports) if wanted and ports.delegation is not None else None
        )
        return make_http_app(
            self.app,
            health=self.health,
            registry=self.registry,
            signing_secret=secret.get_secret_value() if secret else None,
            max_body=self.settings.max_request_bytes,
            events=events,
            ops=ops,
            sign_in=callback,
        )

    def health(self) -> dict[str, Any]:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError:
            return {"ok": False, "database": "unreachable"}
        return {"ok": True, "database": "ok"}

    def close(self, timeout: float | None = None) -> bool:
        """Let in-flight listeners finish (they may still be telling Slack), then let go.

        With a ``timeout`` (seconds), gives up waiting after it and returns False; the engine
        is disposed either way."""

        def finish() -> None:
            self.listeners.shutdown(wait=True)
            for close in self.closers:
                close()

        finished = True
        if timeout is None:
            finish()
        else:
            closing = threading.Thread(target=finish, name="pimbot-close", daemon=True)
            closing.start()
            closing.join(timeout)
            finished = not closing.is_alive()
        self.engine.dispose()
        return finished


def build_web_client(settings: Settings) -> WebClient:
    """Slack's Web API client: base URL, CA bundle and proxy from settings, 429s retried
    after Slack's Retry-After (those retries sleep, so they only ever run after the ack)."""
    assert settings.slack_bot_token is not None
    # What Slack's clients trust (this WebClient and the Socket Mode websocket, which reuses
    # its SSL context): PIMBOT_CA_BUNDLE alone when set; otherwise Python's default context,
    # the OS store, which OpenSSL lets SSL_CERT_FILE / SSL_CERT_DIR replace. Graph and msal
    # trust differently when PIMBOT_CA_BUNDLE is unset: see adapters.graph.transport.tls_context.
    context = ssl.create_default_context(
        cafile=str(settings.ca_bundle) if settings.ca_bundle else None
    )
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        ssl=context,
        timeout=int(settings.http_timeout.total_seconds()) or 10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


def build_slack_runtime(
    settings: Settings,
    *,
    pim: PimClient | None = None,
    web: WebClient | None = None,
    clock: Clock | None = None,
    installation: Installation | None = None,
    delegation: Delegation | None = None,
) -> SlackRuntime:
    """Wire the bot. ``pim``/``web``/``clock``/``installation``/``delegation`` are for tests
    and the demo."""
    problems = settings.problems_for_run() if pim is None else []
    if problems:
        raise ConfigurationError(problems)
    policy = load_policy(settings)
    engine = open_database(settings)
    sessions = make_session_factory(engine)

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    clock = clock or SystemClock()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.count_pending(partial(_count_by_status, sessions))
    web = web or build_web_client(settings)
    observe_slack_calls(web.retry_handlers, metrics.slack)
    installation = installation or _installation(web)
    closers: list[Callable[[], None]] = []
    if pim is None:
        graph = build_pim_client(settings, observer=metrics.graph)
        closers.append(graph.close)
        pim = graph
    pim_reads = ReadCachingPimClient(pim, clock=clock)
    directory = CachedSlackDirectory(SlackWebDirectory(web))
    if delegation is None and settings.delegated_enabled and isinstance(pim, GraphPimClient):
        delegation = build_delegation(settings, pim, web=web, directory=directory)
    rules = CachedRulesSource(
        pim=pim_reads,
        policy=policy,
        clock=clock,
        default_channel=settings.approvals_channel,
        default_security_channel=settings.security_channel,
    )
    approvers = DirectoryApproverResolver(directory=directory, pim=pim_reads, clock=clock)
    access_policies = (
        CachedAccessPolicies(pim.list_access_policies, clock=clock)
        if isinstance(pim, GraphPimClient)
        else None
    )
    notifier = MetricsNotifier(
        SlackNotifier(
            client=web,
            uow=uow,
            directory=directory,
            approvers=approvers,
            rules=rules,
            clock=clock,
            access_policies=access_policies,
        ),
        metrics.requests,
    )
    ports = Ports(
        uow=uow,
        pim=pim_reads,
        notifier=notifier,
        clock=clock,
        approvers=approvers,
        rules=rules,
        delegation=delegation,
        review_nudge_every=settings.approver_nudge_after,
        approval_ttl=settings.approval_ttl,
    )
    # Work after the ack gets its own pool: Bolt's listener threads stay free to ack.
    work = ContextPreservingExecutor(max_workers=32, thread_name_prefix="pimbot-work")
    closers.insert(0, partial(work.shutdown, wait=True))
    deps = SlackDeps(
        ports=ports,
        pim_reads=pim_reads,
        directory=directory,
        installation=installation,
        identify=partial(
            identify,
            installation=installation,
            directory=directory,
            pim=pim_reads,
            uow=uow,
            clock=clock,
            accounts=EntraAccounts(pim_reads, clock=clock),
        ),
        tenant_id=settings.azure_tenant_id,
        later=_submit_to(work),
    )
    # Context-preserving, so the correlation id bound by the middleware follows each listener.
    listeners = ContextPreservingExecutor(max_workers=32, thread_name_prefix="pimbot-slack")
    app = App(
        client=web,
        signing_secret=(
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else None
        ),
        token_verification_enabled=False,
        # Listeners ack first and then talk to Graph; enough threads that slow Graph calls
        # never hold up the ack of the next request.
        listener_executor=listeners,
    )
    keep_request_bodies_out_of_logs()
    register_handlers(app, deps)
    # Timers must see PIM as it is now, not as the read cache remembers it.
    sweeper = Sweeper(
        ports=replace(ports, pim=pim_reads.fresh()),
        pending_timeout=settings.pending_timeout,
        nudge_after=settings.approver_nudge_after,
        lease=settings.sweep_lease,
        observer=metrics.sweeps,
    )
    return SlackRuntime(
        app=app,
        deps=deps,
        web=web,
        engine=engine,
        registry=registry,
        sweeper=sweeper,
        listeners=listeners,
        closers=closers,
        metrics=metrics,
        settings=settings,
    )


def build_delegation(
    settings: Settings, graph: GraphPimClient, *, web: WebClient, directory: SlackDirectory
) -> Delegation:
    """Delegated mode's parts: people's sign-ins through the same app registration and Graph
    connection, their token caches sealed with PIMBOT_TOKEN_KEY."""
    assert settings.azure_tenant_id is not None and settings.token_key is not None
    return Delegation(
        sign_in=build_sign_in(settings, graph.http),
        sealer=FernetSealer.from_setting(settings.token_key.get_secret_value()),
        messages=SlackSignInMessages(client=web, directory=directory),
        pim_as=graph.acting_as,
        approvals_as=graph.acting_as,
        home_tenant=settings.azure_tenant_id,
        allowed_tenants=frozenset(settings.tenants),
        link_ttl=settings.signin_link_ttl,
        auto=settings.deployment_mode is DeploymentMode.AUTO,
    )


def _finish_sign_in(ports: Ports, params: dict[str, str]) -> SignInOutcome:
    return complete_sign_in(params.get("state", ""), params, ports=ports)


def _submit_to(pool: ContextPreservingExecutor) -> Callable[[Callable[[], None]], None]:
    # Nothing waits on these futures: ``handlers.after_ack.run_after_ack``, the only caller,
    # logs and tells every error itself, with the interaction's correlation id (the pool
    # carries it over).
    def submit(work: Callable[[], None]) -> None:
        pool.submit(work)

    return submit


def _count_by_status(sessions: sessionmaker[Session]) -> dict[str, int]:
    with SqlUnitOfWork(sessions) as uow:
        return uow.requests.count_by_status()


def _installation(web: WebClient) -> Installation:
    identity = web.auth_test()
    return Installation(team_id=identity["team_id"], enterprise_id=identity.get("enterprise_id"))


def start_timers(runtime: SlackRuntime, settings: Settings) -> BackgroundScheduler:
    scheduler = build_scheduler(runtime.sweeper, interval=settings.sweep_interval)
    scheduler.start()
    return scheduler


def http_servers(
    runtime: SlackRuntime, settings: Settings, *, port: int | None = None
) -> list[BackgroundHttpServer]:
    """Slack's endpoint on PIMBOT_HOST:PIMBOT_PORT (with the sign-in callback in delegated
    mode); /healthz and /metrics there too, or only on PIMBOT_METRICS_PORT when it is set (so
    they need not be exposed with the endpoint)."""
    separate = settings.metrics_port is not None
    main = runtime.http_app(ops=not separate)
    return _listeners(runtime, settings, main, threads=16, port=port)


def socket_mode_servers(
    runtime: SlackRuntime, settings: Settings, *, port: int | None = None
) -> list[BackgroundHttpServer]:
    """Beside Socket Mode: /healthz, /metrics and the sign-in callback on PIMBOT_PORT (the
    metrics on PIMBOT_METRICS_PORT instead, when it is set)."""
    separate = settings.metrics_port is not None
    main = runtime.http_app(events=False, ops=not separate, sign_in=True)
    return _listeners(runtime, settings, main, threads=8, port=port)


def _listeners(
    runtime: SlackRuntime, settings: Settings, main: WSGIApp, *, threads: int, port: int | None
) -> list[BackgroundHttpServer]:
    servers = [
        BackgroundHttpServer(
            main,
            host=settings.host,
            port=port or settings.port,
            threads=threads,
            max_body=settings.max_request_bytes,
        )
    ]
    if settings.metrics_port is not None:
        servers.append(
            BackgroundHttpServer(
                runtime.http_app(events=False, sign_in=False),
                host=settings.metrics_host or settings.host,
                port=settings.metrics_port,
                threads=4,
                max_body=settings.max_request_bytes,
            )
        )
    return servers


def run_until_stopped(
    runtime: SlackRuntime,
    settings: Settings,
    *,
    port: int | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """``pimbot run``: serve until SIGTERM or SIGINT, then shut down cleanly; the exit code.

    In a container pimbot is PID 1: without its own handler SIGTERM does nothing and every
    ``docker stop`` or rolling deploy waits out its grace period, then kills. On a signal:
    stop taking new work (HTTP listeners stop accepting, Socket Mode disconnects, the sweep
    claims nothing more), let work in flight finish within PIMBOT_SHUTDOWN_GRACE (requests
    being answered, listeners, the row the sweep is on), release every lease this replica
    holds so another takes its rows at once, dispose of the engine. 0 when all of it finished
    in time; 1 when the grace ran out with work still running (it is cut off, and what it
    held is picked up by another replica or after a restart: the outbox and the leases).
    """
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: object) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    scheduler = start_timers(runtime, settings)
    servers: list[BackgroundHttpServer] = []
    socket_mode: SocketModeHandler | None = None
    try:
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            socket_mode = SocketModeHandler(
                runtime.app, settings.slack_app_token.get_secret_value()
            )
            socket_mode.connect()  # type: ignore[no-untyped-call]
            # Socket Mode needs no public endpoint for Slack, but people's browsers come
            # back to /auth/callback, and orchestrators probe /healthz: a small listener.
            try:
                servers = [s.start() for s in socket_mode_servers(runtime, settings, port=port)]
            except OSError as exc:
                scheduler.shutdown(wait=False)
                socket_mode.close()  # type: ignore[no-untyped-call]
                raise ConfigurationError(
                    [f"HTTP: cannot listen on {settings.host} ({exc.strerror or exc})"]
                ) from None
            announce(
                f"pimbot: Socket Mode; GET /healthz, /metrics, /auth/callback on {servers[0].url}"
                if len(servers) == 1
                else f"pimbot: Socket Mode; GET /healthz, /auth/callback on {servers[0].url}, "
                f"GET /healthz, /metrics on {servers[1].url}"
            )
        else:
            try:
                servers = [s.start() for s in http_servers(runtime, settings, port=port)]
            except OSError as exc:
                scheduler.shutdown(wait=False)
                raise ConfigurationError(
                    [f"HTTP: cannot listen on {settings.host} ({exc.strerror or exc})"]
                ) from None
            announce(_describe_http(servers, settings))
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("shutting down", extra={"signal": received[0] if received else None})
    return _shut_down(runtime, settings, scheduler, servers, socket_mode)


def _shut_down(
    runtime: SlackRuntime,
    settings: Settings,
    scheduler: BackgroundScheduler,
    servers: list[BackgroundHttpServer],
    socket_mode: SocketModeHandler | None,
) -> int:
    deadline = time.monotonic() + settings.shutdown_grace.total_seconds()

    def left() -> float:
        return max(deadline - time.monotonic(), 0.0)

    runtime.sweeper.stop()
    scheduler.shutdown(wait=False)
    if socket_mode is not None:
        socket_mode.close()  # type: ignore[no-untyped-call]
    for server in servers:
        server.stop(grace=left())
    swept = runtime.sweeper.wait_idle(left())
    try:
        released = runtime.sweeper.release_leases()
    except SQLAlchemyError:
        log.exception("could not release this replica's leases; they run out by themselves")
        released = 0
    closed = runtime.close(timeout=left())
    clean = swept and closed
    if clean:
        log.info("stopped cleanly", extra={"leases_released": released})
        return 0
    log.warning(
        "shutdown grace ran out with work still running",
        extra={"sweep_finished": swept, "listeners_finished": closed},
    )
    return 1


def _describe_http(servers: list[BackgroundHttpServer], settings: Settings) -> str:
    main = f"pimbot: HTTP on {servers[0].url} (POST /slack/events"
    if len(servers) == 1:
        return main + ", GET /healthz, GET /metrics)"
    return main + f"); GET /healthz, GET /metrics on {servers[1].url}"
