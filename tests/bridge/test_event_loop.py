"""The event loop ``ocpi-bridge serve`` runs on (``OCPI_BRIDGE_EVENT_LOOP``) and uvicorn's HTTP
parser; the real processes on each loop are in ``tests/e2e/test_processes.py``."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
import uvloop
from pydantic import ValidationError
from typer.testing import CliRunner

from bridge import event_loop
from bridge.cli import app
from bridge.settings import Settings
from tests.conftest import running_bridge


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import uvloop`` fails, as on Windows or an install without it."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


@pytest.fixture
def no_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httptools", None)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _loop_of(name: str) -> asyncio.AbstractEventLoop:
    return event_loop.run(_running_loop(), event_loop.loop_factory(name))


def test_auto_picks_uvloop_when_importable():
    assert event_loop.loop_factory("auto") is uvloop.new_event_loop


def test_explicit_uvloop_picks_uvloop():
    assert event_loop.loop_factory("uvloop") is uvloop.new_event_loop


def test_explicit_asyncio_gives_the_default_loop():
    assert event_loop.loop_factory("asyncio") is None
    loop = _loop_of("asyncio")
    assert isinstance(loop, asyncio.BaseEventLoop)
    assert not isinstance(loop, uvloop.Loop)
    assert event_loop.loop_name(loop) == "asyncio"


def test_a_coroutine_runs_on_uvloop_through_the_runner():
    loop = _loop_of("uvloop")
    assert type(loop) is uvloop.Loop
    assert loop.is_closed()
    assert event_loop.loop_name(loop) == "uvloop"


def test_the_runner_returns_the_result_and_leaves_no_current_loop():
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert event_loop.run(answer(), event_loop.loop_factory("auto")) == 42
    assert asyncio._get_running_loop() is None


@pytest.mark.usefixtures("no_uvloop")
def test_auto_falls_back_to_asyncio_without_uvloop():
    assert event_loop.loop_factory("auto") is None


@pytest.mark.usefixtures("no_uvloop")
def test_explicit_uvloop_without_uvloop_is_a_clear_error():
    with pytest.raises(event_loop.EventLoopUnavailable, match="uvloop is not available"):
        event_loop.loop_factory("uvloop")


def test_unknown_name_is_refused_by_the_choice_function():
    with pytest.raises(ValueError, match="unknown event loop"):
        event_loop.loop_factory("trio")


def test_setting_defaults_to_auto_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv("OCPI_BRIDGE_EVENT_LOOP", raising=False)
    assert Settings().event_loop == "auto"
    monkeypatch.setenv("OCPI_BRIDGE_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("OCPI_BRIDGE_EVENT_LOOP", " UVLoop ")
    assert Settings().event_loop == "uvloop"


@pytest.mark.parametrize("value", ["trio", "", "tokio"])
def test_setting_refuses_an_unknown_event_loop(value):
    with pytest.raises(ValidationError, match="event_loop"):
        Settings(event_loop=value)


@pytest.mark.usefixtures("no_uvloop")
def test_serve_with_uvloop_unavailable_exits_with_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.delenv("OCPI_BRIDGE_CONFIG_FILE", raising=False)
    monkeypatch.setenv("OCPI_BRIDGE_EVENT_LOOP", "uvloop")
    monkeypatch.setenv("OCPI_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "error: event loop uvloop is not available" in result.output
    assert not isinstance(result.exception, ImportError)
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("command", [["serve"], ["chargers", "list"], ["site", "check"]])
def test_invalid_settings_are_named_and_exit_2_not_a_traceback(monkeypatch, tmp_path, command):
    """Every command reads the settings first: invalid ones (an unknown event loop, a number
    that is not one, from the environment or the config file) are named as their variables,
    with the value given, and nothing runs."""
    config = tmp_path / "bridge.env"
    config.write_text("OCPI_BRIDGE_OUTBOX_MAX_ATTEMPTS=many\n", encoding="utf-8")
    monkeypatch.setenv("OCPI_BRIDGE_CONFIG_FILE", str(config))
    monkeypatch.setenv("OCPI_BRIDGE_EVENT_LOOP", "trio")
    monkeypatch.setenv("OCPI_BRIDGE_SESSION_PATCH_INTERVAL", "soon")
    monkeypatch.setenv("OCPI_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, ValidationError)
    first, *rest = result.output.splitlines()
    assert first.startswith(f"error: invalid settings in the environment and {config}: ")
    for name, value in (
        ("EVENT_LOOP", "trio"),
        ("SESSION_PATCH_INTERVAL", "soon"),
        ("OUTBOX_MAX_ATTEMPTS", "many"),
    ):
        assert re.search(rf"OCPI_BRIDGE_{name}: [^;]* \(got '{value}'\)", first), name
    assert rest == []  # nothing else printed (no table header, no traceback)
    assert not (tmp_path / "never.db").exists()


def test_http_parser_is_httptools_when_importable():
    assert event_loop.http_parser() == "httptools"


@pytest.mark.usefixtures("no_httptools")
def test_http_parser_falls_back_to_h11():
    assert event_loop.http_parser() == "h11"


async def test_the_bridge_hands_the_parser_to_uvicorn_and_logs_loop_and_parser(tmp_path, caplog):
    caplog.set_level("INFO", logger="bridge.main")
    async with running_bridge(tmp_path) as bridge:
        assert bridge._http is not None
        assert bridge._http.config.http == "httptools"
    loop = event_loop.loop_name(asyncio.get_running_loop())
    assert f"event loop {loop}, HTTP parser httptools" in caplog.messages
