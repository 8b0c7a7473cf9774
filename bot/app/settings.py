"""pimbot's settings: one frozen object built from the environment, checked all at once.

Names follow their owners: Slack's (``SLACK_*``), azure-identity's (``AZURE_*``) and
``PIMBOT_*`` for the rest. ``Settings.from_env`` never raises half-way: it collects every
problem and raises one ``ConfigurationError`` listing them all. Secrets are ``SecretStr`` so
they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.adapters.sealing import parse_token_keys
from bot.domain.durations import parse_duration
from bot.domain.errors import ConfigurationError
from bot.domain.rules import DeploymentMode

# environment variable -> field name
ENV_NAMES: dict[str, str] = {
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_APP_TOKEN": "slack_app_token",
    "AZURE_TENANT_ID": "azure_tenant_id",
    "AZURE_CLIENT_ID": "azure_client_id",
    "AZURE_CLIENT_SECRET": "azure_client_secret",
    "AZURE_CLIENT_CERTIFICATE_PATH": "azure_client_certificate_path",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD": "azure_client_certificate_password",
    "AZURE_AUTHORITY_HOST": "azure_authority_host",
    "PIMBOT_DATA_DIR": "data_dir",
    "PIMBOT_DATABASE_URL": "database_url",
    "PIMBOT_POLICY_FILE": "policy_file",
    "PIMBOT_GRAPH_URL": "graph_url",
    "PIMBOT_SLACK_API_URL": "slack_api_url",
    "PIMBOT_CA_BUNDLE": "ca_bundle",
    "PIMBOT_PUBLIC_URL": "public_url",
    "PIMBOT_APPROVALS_CHANNEL": "approvals_channel",
    "PIMBOT_SECURITY_CHANNEL": "security_channel",
    "PIMBOT_HOST": "host",
    "PIMBOT_PORT": "port",
    "PIMBOT_METRICS_HOST": "metrics_host",
    "PIMBOT_METRICS_PORT": "metrics_port",
    "PIMBOT_MAX_REQUEST_BYTES": "max_request_bytes",
    "PIMBOT_MODE": "deployment_mode",
    "PIMBOT_TOKEN_KEY": "token_key",
    "PIMBOT_TENANTS": "tenants",
    "PIMBOT_SIGNIN_LINK_TTL": "signin_link_ttl",
    "PIMBOT_LOG_LEVEL": "log_level",
    "PIMBOT_LOG_FORMAT": "log_format",
    "PIMBOT_HTTP_TIMEOUT": "http_timeout",
    "PIMBOT_REMINDER_LEAD": "reminder_lead",
    "PIMBOT_PENDING_TIMEOUT": "pending_timeout",
    "PIMBOT_APPROVER_NUDGE_AFTER": "approver_nudge_after",
    "PIMBOT_APPROVAL_TTL": "approval_ttl",
    "PIMBOT_SWEEP_INTERVAL": "sweep_interval",
    "PIMBOT_SWEEP_LEASE": "sweep_lease",
    "PIMBOT_SHUTDOWN_GRACE": "shutdown_grace",
}
FIELD_TO_ENV = {field: env for env, field in ENV_NAMES.items()}
# The test suite's own knobs (PIMBOT_TEST_DATABASE_URL, ...) share the prefix but are not ours.
_RESERVED_PREFIXES = ("PIMBOT_TEST_",)
_DURATION_FIELDS = (
    "http_timeout",
    "reminder_lead",
    "pending_timeout",
    "approver_nudge_after",
    "approval_ttl",
    "sweep_interval",
    "sweep_lease",
    "shutdown_grace",
    "signin_link_ttl",
)
# Sign-in authorities that are not a tenant: people must name the tenant they connect to.
_NOT_TENANTS = frozenset({"common", "organizations", "consumers"})
_TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Settings(BaseModel):
    """Everything pimbot reads from its environment; immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: SecretStr | None = None
    azure_client_certificate_path: Path | None = None
    azure_client_certificate_password: SecretStr | None = None
    azure_authority_host: str = "https://login.microsoftonline.com"
    data_dir: Path = Path(".")
    database_url: SecretStr | None = None
    policy_file: Path | None = None
    graph_url: str = "https://graph.microsoft.com/v1.0"
    slack_api_url: str = "https://slack.com/api/"
    ca_bundle: Path | None = None
    public_url: str | None = None
    approvals_channel: str | None = None
    security_channel: str | None = None  # break-glass alerts, besides the approvals channel
    # The address HTTP mode binds; 0.0.0.0 by default because a container's port is published
    # from its own interface. /healthz and /metrics move to metrics_port when it is set.
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=1, le=65535)
    metrics_host: str | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Slack's payloads are small; a bigger body is refused (413) before it is read.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # PIMBOT_MODE. Unset: auto once a token key is configured (delegated mode is set up),
    # broker otherwise (see _default_mode).
    deployment_mode: DeploymentMode = DeploymentMode.BROKER
    # Seals people's token caches and sign-ins in progress; several keys, newest first.
    token_key: SecretStr | None = None
    # Tenants people may `/pim connect` to besides the home tenant (AZURE_TENANT_ID).
    tenants: tuple[str, ...] = ()
    # How long a sign-in link stays usable (it is single-use either way).
    signin_link_ttl: timedelta = timedelta(minutes=10)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    http_timeout: timedelta = timedelta(seconds=10)
    reminder_lead: timedelta = timedelta(minutes=10)
    pending_timeout: timedelta = timedelta(hours=24)
    approver_nudge_after: timedelta = timedelta(hours=1)
    # How long an approval stays good for activating (from the decision, or from the requested
    # start): an activation that could not happen in time fails instead of running on a stale yes.
    approval_ttl: timedelta = timedelta(hours=1)
    sweep_interval: timedelta = timedelta(seconds=15)
    # How long a replica holds a due row it claimed; a dead replica's rows wait this long.
    sweep_lease: timedelta = timedelta(minutes=2)
    # On SIGTERM/SIGINT: how long in-flight work (listeners, the current sweep) may finish.
    shutdown_grace: timedelta = timedelta(seconds=20)

    @field_validator(*_DURATION_FIELDS, mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("azure_authority_host", "graph_url", "slack_api_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("azure_authority_host", "graph_url", "slack_api_url", "public_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        # Tokens, client assertions, approvals (and, for the public URL, sign-in codes) travel
        # on these: plain HTTP only to this machine (the local stand-ins), never a network.
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise ValueError(
                "must be an https:// URL (http:// is accepted only for loopback: "
                "127.0.0.0/8, ::1, localhost)"
            )
        return value

    @field_validator("sweep_lease", "shutdown_grace")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_mode(cls, data: Any) -> Any:
        # The default follows the configuration: an operator who set up a token key meant
        # delegated mode, where a role's PIM settings call for it (auto).
        if isinstance(data, dict) and data.get("deployment_mode") is None:
            data = dict(data)
            keyed = data.get("token_key") is not None
            data["deployment_mode"] = DeploymentMode.AUTO if keyed else DeploymentMode.BROKER
        return data

    @field_validator("token_key")
    @classmethod
    def _token_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_token_keys(value.get_secret_value())  # ValueError names the position only
        return value

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenant_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in re.split(r"[\s,]+", value) if part]
        if not isinstance(value, list | tuple):
            return value
        tenants: list[str] = []
        for raw in value:
            tenant = str(raw).strip().lower().rstrip(".")
            if tenant in _NOT_TENANTS:
                raise ValueError(
                    f"{raw!r} is a sign-in audience, not a tenant: name each tenant by its id "
                    "or a verified domain (contoso.onmicrosoft.com)"
                )
            if not (_TENANT_ID.match(tenant) or _DOMAIN.match(tenant)):
                raise ValueError(
                    f"{raw!r} is neither a tenant id (a GUID) nor a domain name "
                    "(contoso.onmicrosoft.com)"
                )
            if tenant not in tenants:
                tenants.append(tenant)
        return tuple(tenants)

    @field_validator("signin_link_ttl")
    @classmethod
    def _signin_link_ttl(cls, value: timedelta) -> timedelta:
        # A sign-in link in a DM is a bearer of someone's sign-in: short-lived by design.
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        if value > timedelta(hours=1):
            raise ValueError("must be at most 1 hour (a sign-in link should not linger in a DM)")
        return value

    @field_validator("azure_authority_host")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        # msal accepts only https authorities (it refuses http:// at construction).
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (msal refuses anything else)")
        return value.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build from an environment mapping; ConfigurationError lists every problem found."""
        problems: list[str] = []
        values: dict[str, str] = {}
        for name, raw in env.items():
            if name in ENV_NAMES:
                if raw.strip() != "":
                    values[ENV_NAMES[name]] = raw.strip()
            elif name.startswith("PIMBOT_") and not name.startswith(_RESERVED_PREFIXES):
                problems.append(f"environment: {name} is not a pimbot setting (typo?)")
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems.extend(_describe(exc, values))
            raise ConfigurationError(problems) from None
        problems.extend(settings._file_problems())
        if settings.metrics_host is not None and settings.metrics_port is None:
            problems.append(
                "environment: PIMBOT_METRICS_HOST is set but PIMBOT_METRICS_PORT is not "
                "(the metrics host applies to the separate metrics port only)"
            )
        if settings.metrics_port is not None and settings.metrics_port == settings.port:
            problems.append(
                "environment: PIMBOT_METRICS_PORT must differ from PIMBOT_PORT "
                "(leave it unset to serve /healthz and /metrics on PIMBOT_PORT)"
            )
        problems.extend(settings._delegated_problems())
        if problems:
            raise ConfigurationError(problems)
        return settings

    def _delegated_problems(self) -> list[str]:
        """What delegated (or auto) mode cannot run without."""
        if not self.delegated_enabled:
            return []
        mode = f"PIMBOT_MODE={self.deployment_mode.value}"
        if self.deployment_mode is DeploymentMode.AUTO and self.token_key is not None:
            mode += " (the default once PIMBOT_TOKEN_KEY is set; set PIMBOT_MODE=broker to opt out)"
        problems = []
        if self.token_key is None:
            problems.append(
                f"environment: {mode} needs PIMBOT_TOKEN_KEY, the key that seals people's "
                "sign-ins in the database (`pimbot token-key` prints one)"
            )
        # Without PIMBOT_PUBLIC_URL people sign in by device code (doctor says what that
        # costs: some tenants block it by Conditional Access).
        return problems

    def _file_problems(self) -> list[str]:
        problems = []
        for field, path in (
            ("policy_file", self.policy_file),
            ("azure_client_certificate_path", self.azure_client_certificate_path),
            ("ca_bundle", self.ca_bundle),
        ):
            if path is not None and not path.is_file():
                problems.append(f"environment: {FIELD_TO_ENV[field]}={path} is not a readable file")
        return problems

    # --- what a command needs -----------------------------------------------------------------

    def problems_for_run(self) -> list[str]:
        """Missing settings that ``pimbot run`` cannot do without."""
        problems = []
        if self.slack_bot_token is None:
            problems.append("environment: SLACK_BOT_TOKEN is missing (the bot token, xoxb-…)")
        if self.slack_app_token is None and self.slack_signing_secret is None:
            problems.append(
                "environment: SLACK_SIGNING_SECRET is missing (needed in HTTP mode; "
                "set SLACK_APP_TOKEN instead for Socket Mode)"
            )
        problems.extend(self.problems_for_graph())
        return problems

    def problems_for_graph(self) -> list[str]:
        problems = []
        if not self.azure_tenant_id:
            problems.append("environment: AZURE_TENANT_ID is missing")
        if not self.azure_client_id:
            problems.append("environment: AZURE_CLIENT_ID is missing")
        if self.azure_client_secret is None and self.azure_client_certificate_path is None:
            problems.append(
                "environment: AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH "
                "is missing (the app registration's credential)"
            )
        return problems

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for the log filter that masks them."""
        secrets = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.azure_client_secret,
            self.azure_client_certificate_password,
        ]
        values = [s.get_secret_value() for s in secrets if s is not None]
        values.extend(key.decode("ascii") for key in self.token_keys())
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                values.append(password)
        return values

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def delegated_enabled(self) -> bool:
        """People may sign in and act as themselves (PIMBOT_MODE delegated or auto)."""
        return self.deployment_mode in (DeploymentMode.DELEGATED, DeploymentMode.AUTO)

    @property
    def redirect_uri(self) -> str | None:
        """Where Entra sends people back after signing in; the app registration lists it."""
        if self.public_url is None:
            return None
        return self.public_url.rstrip("/") + "/auth/callback"

    @property
    def connectable_tenants(self) -> tuple[str, ...]:
        """The home tenant, then PIMBOT_TENANTS: where people may `/pim connect` to."""
        home = (self.azure_tenant_id.lower(),) if self.azure_tenant_id else ()
        return home + tuple(t for t in self.tenants if t not in home)

    def token_keys(self) -> list[bytes]:
        """PIMBOT_TOKEN_KEY's keys, newest (the one that seals) first; empty when unset."""
        if self.token_key is None:
            return []
        return parse_token_keys(self.token_key.get_secret_value())

    def effective_database_url(self) -> str:
        """The database URL in SQLAlchemy's form; SQLite under the data directory by default."""
        if self.database_url is not None:
            return normalize_database_url(self.database_url.get_secret_value())
        return f"sqlite:///{self.data_dir / 'pimbot.db'}"


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_database_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver pimbot ships with)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: ValidationError, values: Mapping[str, str]) -> list[str]:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        env = FIELD_TO_ENV.get(field, field)
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = (
            ""
            if "secret" in field or "token" in field or field == "database_url"
            else f" (got {values.get(field)!r})"
        )
        problems.append(f"environment: {env}: {message}{shown}")
    return problems
