"""The composition root: the only place that builds engines, clients and apps from Settings."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import waitress
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.approvers import DirectoryApproverResolver
from bot.catalog import CachedRulesSource, ReadCachingPimClient
from bot.clock import SystemClock
from bot.elevation import AuditEntry
from bot.errors import ConfigurationError
from bot.graph import build_pim_client
from bot.identity import EntraAccounts, Installation, identify
from bot.metrics import Metrics, MetricsNotifier
from bot.policy_file import PolicyFile, load_policy_file
from bot.ports import Clock, IdentityLink, PimClient
from bot.scheduler import Sweeper, build_scheduler
from bot.services import Ports
from bot.settings import Settings, redact_url
from handlers import register_handlers
from handlers.context import SlackDeps
from handlers.directory import SlackWebDirectory
from handlers.errors import explain
from handlers.http import WSGIApp, make_http_app
from handlers.middleware import ContextPreservingExecutor, observe_slack_calls
from handlers.notifier import SlackNotifier
from storage.database import (
    current_revision,
    head_revision,
    is_up_to_date,
    make_engine,
    make_session_factory,
    upgrade,
)
from storage.unit_of_work import SqlUnitOfWork


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


def read_audit(settings: Settings, *, request_id: str | None, limit: int) -> list[AuditEntry]:
    engine = open_database(settings)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            if request_id:
                return uow.audit.list_for_request(request_id)
            return list(reversed(uow.audit.list_recent(limit=limit)))
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

    def http_app(self) -> WSGIApp:
        return make_http_app(self.app, health=self.health, registry=self.registry)

    def health(self) -> dict[str, Any]:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError:
            return {"ok": False, "database": "unreachable"}
        return {"ok": True, "database": "ok"}

    def close(self) -> None:
        """Let in-flight listeners finish (they may still be telling Slack), then let go."""
        self.listeners.shutdown(wait=True)
        for close in self.closers:
            close()
        self.engine.dispose()


def build_web_client(settings: Settings) -> WebClient:
    """Slack's Web API client: base URL, CA bundle and proxy from settings, 429s retried
    after Slack's Retry-After (those retries sleep, so they only ever run after the ack)."""
    assert settings.slack_bot_token is not None
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
) -> SlackRuntime:
    """Wire the bot. ``pim``/``web``/``clock``/``installation`` are for tests and the demo."""
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
    directory = SlackWebDirectory(web)
    rules = CachedRulesSource(
        pim=pim_reads, policy=policy, clock=clock, default_channel=settings.approvals_channel
    )
    approvers = DirectoryApproverResolver(directory=directory, pim=pim_reads, clock=clock)
    notifier = MetricsNotifier(
        SlackNotifier(
            client=web, uow=uow, directory=directory, approvers=approvers, rules=rules, clock=clock
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
        mode=settings.mode,
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
    register_handlers(app, deps)
    # Timers must see PIM as it is now, not as the read cache remembers it.
    sweeper = Sweeper(
        ports=replace(ports, pim=pim_reads.fresh()),
        pending_timeout=settings.pending_timeout,
        nudge_after=settings.approver_nudge_after,
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
    )


def _submit_to(pool: ContextPreservingExecutor) -> Callable[[Callable[[], None]], None]:
    def submit(work: Callable[[], None]) -> None:
        pool.submit(_logged, work)

    return submit


def _logged(work: Callable[[], None]) -> None:
    # Nothing waits on these futures: an unexpected error must still reach the log, with the
    # interaction's correlation id (the pool carries it over).
    try:
        work()
    except Exception as exc:
        explain(exc)


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


def serve_http(runtime: SlackRuntime, *, host: str, port: int) -> None:
    """Serve until interrupted: waitress's threads keep each ack off the slow paths."""
    waitress.serve(
        runtime.http_app(),
        host=host,
        port=port,
        threads=16,
        ident="pimbot",
        clear_untrusted_proxy_headers=True,
    )


def serve_socket_mode(runtime: SlackRuntime, settings: Settings) -> None:
    assert settings.slack_app_token is not None
    handler = SocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value())
    handler.start()  # type: ignore[no-untyped-call]
