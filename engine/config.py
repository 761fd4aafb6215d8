"""Settings read from the environment once, so every entry point (API, CLI, scheduler) agrees."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from engine.notify.destinations import DEFAULT_NETWORKS
from engine.store.db import LOCK_WAIT_MS

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    secret_key: str
    forms_dir: Path = REPO_ROOT / "forms"
    bpmn_dir: Path = REPO_ROOT / "bpmn"
    token_ttl_seconds: int = 8 * 3600
    max_upload_bytes: int = 5 * 1024 * 1024
    max_json_body_bytes: int = 1024 * 1024
    script_max_seconds: float = 1.0
    lock_wait_ms: int = LOCK_WAIT_MS  # a write waits this long for a lock held by another, then answers 503
    login_max_failures: int = 5  # failed passwords in a row that lock an account...
    lockout_minutes: int = 15  # ...for this long, so passwords cannot be guessed online
    temporary_password_hours: int = 72  # an administrator's reset password works this long, for one change
    contracts_dir: Path = REPO_ROOT / "product_configs" / "contracts"
    lpr_file: Path = REPO_ROOT / "product_configs" / "lpr.json"
    pki_dir: Path | None = None  # the development PKI; default <data_dir>/pki
    seal_config: Path | None = None  # production seal keys (key files or PKCS#11) and TSA URL
    storage_url: str | None = None  # blob storage: default a folder under the data dir; s3://bucket/prefix
    webhook_networks: tuple[str, ...] = DEFAULT_NETWORKS  # non-public networks webhooks may reach (CIDRs)
    pdf_workers: int = 1  # warm LibreOffice processes per platform process
    office_dir: Path | None = None  # their profiles and scratch files; default <data_dir>/office
    retention_years_approved: int = 30  # a granted loan's file
    retention_years_declined: int = 10  # a rejected, aborted or cancelled application's file
    archive_renew_days: int = 365  # renew an archive's timestamp this long before its TSA certificate expires
    idempotency_days: int = 30  # how long a retried submission replays what it started
    notification_days: int = 180  # notifications and delivered messages are kept this long
    # dual control (双人复核) of credit products: a person's publish is refused; a publication request is
    # submitted by one product manager and published by a second one's approval
    four_eyes: bool = True
    shutdown_grace_seconds: int = 30  # on SIGTERM, how long the jobs running then may take to finish

    @property
    def pki_path(self) -> Path:
        return self.pki_dir or self.data_dir / "pki"

    @property
    def office_path(self) -> Path:
        return self.office_dir or self.data_dir / "office"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        data_dir = Path(os.environ.get("CREDITFLOW_DATA_DIR", REPO_ROOT / "var"))
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'creditflow.db'}"
        secret = os.environ.get("CREDITFLOW_SECRET_KEY") or _local_secret(data_dir)
        if len(secret) < MIN_SECRET_LENGTH:  # HS256 tokens: one leaked token brute-forces a short key offline
            raise ConfigError(
                f"CREDITFLOW_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters of randomness, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; every node sets the same one"
            )
        values: dict[str, object] = {"database_url": database_url, "data_dir": data_dir, "secret_key": secret}
        if os.environ.get("CREDITFLOW_SEAL_CONFIG"):
            values["seal_config"] = Path(os.environ["CREDITFLOW_SEAL_CONFIG"])
        if os.environ.get("CREDITFLOW_FORMS_DIR"):
            values["forms_dir"] = Path(os.environ["CREDITFLOW_FORMS_DIR"])
        if os.environ.get("CREDITFLOW_PKI_DIR"):
            values["pki_dir"] = Path(os.environ["CREDITFLOW_PKI_DIR"])
        if os.environ.get("CREDITFLOW_STORAGE_URL"):
            values["storage_url"] = os.environ["CREDITFLOW_STORAGE_URL"]
        if "CREDITFLOW_WEBHOOK_NETWORKS" in os.environ:  # empty: public addresses only
            values["webhook_networks"] = tuple(
                cidr.strip() for cidr in os.environ["CREDITFLOW_WEBHOOK_NETWORKS"].split(",") if cidr.strip()
            )
        if os.environ.get("CREDITFLOW_FOUR_EYES"):
            values["four_eyes"] = _switch("CREDITFLOW_FOUR_EYES", os.environ["CREDITFLOW_FOUR_EYES"])
        for name, variable in _INT_VARIABLES.items():
            if os.environ.get(variable):
                values[name] = _whole(variable, os.environ[variable], 0 if name == "pdf_workers" else 1)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


MIN_SECRET_LENGTH = 32


class ConfigError(ValueError):
    """A setting in the environment that the platform cannot run with; the message names the variable."""


def _whole(variable: str, text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number, not {text!r}") from None
    if value < least:
        raise ConfigError(f"{variable} must be at least {least}, not {value}")
    return value


_SWITCH = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


def _switch(variable: str, text: str) -> bool:
    """An on/off setting; anything but the usual spellings is refused rather than read as off."""
    value = _SWITCH.get(text.strip().lower())
    if value is None:
        raise ConfigError(f"{variable} must be on or off (true/false, 1/0, yes/no), not {text!r}")
    return value


_INT_VARIABLES = {
    "login_max_failures": "CREDITFLOW_LOGIN_MAX_FAILURES",
    "lockout_minutes": "CREDITFLOW_LOCKOUT_MINUTES",
    "temporary_password_hours": "CREDITFLOW_TEMPORARY_PASSWORD_HOURS",
    "pdf_workers": "CREDITFLOW_PDF_WORKERS",
    "lock_wait_ms": "CREDITFLOW_LOCK_WAIT_MS",
    "retention_years_approved": "CREDITFLOW_RETENTION_YEARS_APPROVED",
    "retention_years_declined": "CREDITFLOW_RETENTION_YEARS_DECLINED",
    "archive_renew_days": "CREDITFLOW_ARCHIVE_RENEW_DAYS",
    "idempotency_days": "CREDITFLOW_IDEMPOTENCY_DAYS",
    "notification_days": "CREDITFLOW_NOTIFICATION_DAYS",
    "shutdown_grace_seconds": "CREDITFLOW_SHUTDOWN_GRACE_SECONDS",
}


def _local_secret(data_dir: Path) -> str:
    """A per-installation signing key kept in the data dir, so tokens survive restarts.

    Production sets CREDITFLOW_SECRET_KEY; the embedded default must still never share a key
    between installations, hence a random one written with owner-only permissions.
    """
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
