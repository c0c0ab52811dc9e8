"""Settings from CLIENTSTATS_* environment variables, built lazily and validated."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clientstats.errors import ConfigurationError
from clientstats.services.importing import DEFAULT_BATCH_SIZE as DEFAULT_IMPORT_BATCH_SIZE
from clientstats.storage.database import DEFAULT_URL


class Settings(BaseSettings):
    """Every setting of the service; the README documents each one."""

    model_config = SettingsConfigDict(env_prefix="CLIENTSTATS_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_URL
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_timeout: float = Field(default=5.0, gt=0, le=60)
    redis_timeout: float = Field(default=0.25, gt=0, le=10)
    redis_url: str | None = None
    cache_ttl: int = Field(default=1200, ge=1, le=86_400)
    http_max_age: int | None = Field(default=None, ge=0, le=86_400)
    freshness_poll_interval: float = Field(default=0.25, gt=0, le=10)
    admin_token: str = ""
    debug: bool = False
    import_batch_size: int = Field(default=DEFAULT_IMPORT_BATCH_SIZE, ge=1, le=100_000)
    worker_in_process: bool = True
    stream_max_subscribers: int = Field(default=5000, ge=1, le=1_000_000)
    stream_heartbeat_interval: float = Field(default=15.0, gt=0, le=3600)
    metrics: bool = True
    access_log: bool = False
    # Where the service is reached from outside; links in the lists start with it.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    # Take X-Forwarded-Proto/-Host for links only when a proxy in front sets (and overwrites) them.
    trust_forwarded_headers: bool = False

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        # Empty disables the admin API, which is safe; a set token must be hard to guess.
        if self.admin_token and len(self.admin_token) < 32:
            raise ValueError(
                "CLIENTSTATS_ADMIN_TOKEN must be at least 32 characters in production "
                "(or empty, which disables the admin API)"
            )
        if self.debug:
            raise ValueError("CLIENTSTATS_DEBUG must be off in production")
        return self


def load_settings() -> Settings:
    """Read the settings from the environment; raises ConfigurationError with the reason."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {_reasons(exc)}") from exc


def _reasons(exc: ValidationError) -> str:
    """One line naming each offending variable; checks across settings name theirs."""
    reasons = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            name = "_".join(str(part) for part in error["loc"]).upper()
            message = f"CLIENTSTATS_{name}: {message}"
        reasons.append(message)
    return "; ".join(reasons)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()
