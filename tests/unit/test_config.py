"""Settings: documented defaults, values from the environment, unsafe production refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clientstats.config import Settings, load_settings
from clientstats.errors import ConfigurationError
from tests.conftest import free_port

LONG_TOKEN = "x" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CLIENTSTATS_* variable of the calling shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CLIENTSTATS_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_documented_ones() -> None:
    config = load_settings()
    assert config.environment == "development"
    assert config.database_url == "sqlite:///./clientstats.db"
    assert config.database_pool_size == 5
    assert config.database_timeout == 5.0
    assert config.redis_url is None
    assert config.redis_timeout == 0.25
    assert config.cache_ttl == 1200
    assert config.freshness_poll_interval == 0.25
    assert config.admin_token == ""
    assert config.debug is False
    assert config.import_batch_size == 5000
    assert config.http_max_age is None
    assert config.worker_in_process is True
    assert config.stream_max_subscribers == 5000
    assert config.stream_heartbeat_interval == 15.0
    assert config.metrics is True
    assert config.access_log is False
    assert config.public_url is None
    assert config.trust_forwarded_headers is False


def test_every_setting_comes_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://app@db.internal/clientstats",
        "DATABASE_POOL_SIZE": "12",
        "DATABASE_TIMEOUT": "2.5",
        "REDIS_URL": "redis://cache.internal:6379/2",
        "REDIS_TIMEOUT": "0.1",
        "CACHE_TTL": "60",
        "HTTP_MAX_AGE": "0",
        "FRESHNESS_POLL_INTERVAL": "0.5",
        "ADMIN_TOKEN": LONG_TOKEN,
        "DEBUG": "false",
        "IMPORT_BATCH_SIZE": "250",
        "WORKER_IN_PROCESS": "false",
        "STREAM_MAX_SUBSCRIBERS": "200",
        "STREAM_HEARTBEAT_INTERVAL": "0.5",
        "METRICS": "false",
        "ACCESS_LOG": "true",
        "PUBLIC_URL": "https://stats.example.org",
        "TRUST_FORWARDED_HEADERS": "true",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"CLIENTSTATS_{name}", value)
    config = load_settings()
    assert config == Settings(
        environment="production",
        database_url="postgresql://app@db.internal/clientstats",
        database_pool_size=12,
        database_timeout=2.5,
        redis_url="redis://cache.internal:6379/2",
        redis_timeout=0.1,
        cache_ttl=60,
        http_max_age=0,
        freshness_poll_interval=0.5,
        admin_token=LONG_TOKEN,
        debug=False,
        import_batch_size=250,
        worker_in_process=False,
        stream_max_subscribers=200,
        stream_heartbeat_interval=0.5,
        metrics=False,
        access_log=True,
        public_url="https://stats.example.org",
        trust_forwarded_headers=True,
    )


@pytest.mark.parametrize("token", ["x", "change-me", "x" * 31])
def test_production_refuses_a_short_admin_token_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("CLIENTSTATS_ENVIRONMENT", "production")
    monkeypatch.setenv("CLIENTSTATS_ADMIN_TOKEN", token)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert raised.value.message == (
        "invalid settings: CLIENTSTATS_ADMIN_TOKEN must be at least 32 characters in "
        "production (or empty, which disables the admin API)"
    )


@pytest.mark.parametrize("token", [None, ""])
def test_production_allows_no_admin_token_which_disables_the_admin_api(
    monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv("CLIENTSTATS_ENVIRONMENT", "production")
    if token is not None:
        monkeypatch.setenv("CLIENTSTATS_ADMIN_TOKEN", token)
    assert load_settings().admin_token == ""


def test_production_refuses_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTSTATS_ENVIRONMENT", "production")
    monkeypatch.setenv("CLIENTSTATS_ADMIN_TOKEN", LONG_TOKEN)
    monkeypatch.setenv("CLIENTSTATS_DEBUG", "true")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "CLIENTSTATS_DEBUG" in raised.value.message


def test_production_accepts_a_long_token_without_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTSTATS_ENVIRONMENT", "production")
    monkeypatch.setenv("CLIENTSTATS_ADMIN_TOKEN", LONG_TOKEN)
    config = load_settings()
    assert (config.environment, config.admin_token, config.debug) == (
        "production",
        LONG_TOKEN,
        False,
    )


def test_development_allows_what_production_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTSTATS_DEBUG", "true")
    monkeypatch.setenv("CLIENTSTATS_ADMIN_TOKEN", "short")
    config = load_settings()
    assert (config.debug, config.admin_token) == (True, "short")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_TIMEOUT", "0"),
        ("REDIS_TIMEOUT", "-1"),
        ("CACHE_TTL", "many"),
        ("HTTP_MAX_AGE", "-1"),
        ("ENVIRONMENT", "staging"),
        ("STREAM_MAX_SUBSCRIBERS", "0"),
        ("STREAM_HEARTBEAT_INTERVAL", "0"),
        ("ACCESS_LOG", "maybe"),
        ("ACCESS_LOG", "2"),
        ("METRICS", "enabled"),
        ("PUBLIC_URL", "stats.example.org"),
        ("PUBLIC_URL", "ftp://stats.example.org"),
        ("PUBLIC_URL", "https://stats.example.org/?x=1"),
        ("TRUST_FORWARDED_HEADERS", "maybe"),
    ],
)
def test_malformed_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"CLIENTSTATS_{name}", value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert f"CLIENTSTATS_{name}" in raised.value.message


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        *[("true", True), ("1", True), ("on", True), ("yes", True), ("TRUE", True)],
        *[("false", False), ("0", False), ("off", False), ("no", False)],
    ],
)
def test_the_access_log_and_metrics_switches_read_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, written: str, meant: bool
) -> None:
    monkeypatch.setenv("CLIENTSTATS_ACCESS_LOG", written)
    monkeypatch.setenv("CLIENTSTATS_METRICS", written)
    config = load_settings()
    assert (config.access_log, config.metrics) == (meant, meant)


def _serve(tmp_path: object, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTSTATS_")}
    environment.update(CLIENTSTATS_DATABASE_URL=f"sqlite:///{tmp_path}/clientstats.db", **env)
    return subprocess.run(
        [sys.executable, "-m", "clientstats", "serve", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLIENTSTATS_ADMIN_TOKEN": "short"}, "CLIENTSTATS_ADMIN_TOKEN"),
        ({"CLIENTSTATS_ADMIN_TOKEN": LONG_TOKEN, "CLIENTSTATS_DEBUG": "1"}, "CLIENTSTATS_DEBUG"),
    ],
)
def test_serve_in_production_with_unsafe_settings_exits_with_one_line(
    tmp_path: object, env: dict[str, str], named: str
) -> None:
    result = _serve(tmp_path, CLIENTSTATS_ENVIRONMENT="production", **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("clientstats: ") and named in lines[0]
    assert "CLIENTSTATS_SETTINGS" not in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
