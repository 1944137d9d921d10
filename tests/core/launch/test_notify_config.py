"""launch.notify: a hook named in the config gives a single run its notification, headless
(real `olmo-tui` subprocesses, the real sweep worker, a real HTTP listener for the webhook)."""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from cli_helpers import run_cli
from engine.config import ConfigError, resolve
from olmo_tui.core.runs.registry import Registry, runs_root
from olmo_tui.core.launch.sweep_queue import all_sweeps, log_path

TWO_STEPS = ["--trainer.max_duration=2 steps", "--trainer.callbacks.lm_evaluator.enabled=false"]


def recorder(path: Path) -> list:
    """A hook command: appends the event JSON it gets on stdin to `path`."""
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + chr(10))", str(path)]


def events_in(path: Path, want: set, timeout: float = 30.0) -> list:
    """The events written to `path`, once every kind in `want` is there (the worker sends them
    a moment after the run's end is recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if want <= {e["event"] for e in got}:
            return got
        time.sleep(0.2)
    raise AssertionError(f"no {sorted(want)} events in {path} after {timeout} s")


class Listener(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Listener.received = []
    server = HTTPServer(("127.0.0.1", 0), Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook/s3cret-token", Listener.received
    server.shutdown()
    server.server_close()


def nothing_queued() -> None:
    assert not runs_root().exists() or not any(runs_root().iterdir())
    if Registry().path.exists():
        assert Registry().all() == [] and all_sweeps(Registry()) == []


def test_config_hook_calls_command_and_webhook_and_stores_no_url(isolated_xdg, tmp_path, webhook):
    url, received = webhook
    events = tmp_path / "events.jsonl"
    out = run_cli("--preset", "tiny-cpu", *TWO_STEPS, f"--launch.notify.command={json.dumps(recorder(events))}",
                  "--launch.notify.webhook_env=TEST_HOOK_URL", env={"TEST_HOOK_URL": url}, timeout=120)
    assert out.returncode == 0, out.stderr
    [run] = Registry().all()
    assert (run.status, run.latest_step) == ("succeeded", 2) and run.sweep
    got = events_in(events, {"succeeded", "sweep_done"})
    assert [(e["event"], e["run_id"], e["status"]) for e in got if e["event"] != "sweep_done"] == \
        [("succeeded", run.id, "succeeded")]
    deadline = time.monotonic() + 15
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(path, data["event"], data.get("run_id")) for path, data in received] == \
        [("/hook/s3cret-token", "succeeded", run.id), ("/hook/s3cret-token", "sweep_done", None)]
    # Only the variable's NAME is kept: the run's config.toml, the registry, the worker's log.
    config = (Path(run.run_dir) / "config.toml").read_text()
    assert 'webhook_env = "TEST_HOOK_URL"' in config
    kept = [config, log_path(run.sweep).read_text(), out.stdout, out.stderr]
    rows = [dict(row) for table in ("runs", "sweeps") for row in Registry().query(f"SELECT * FROM {table}")]
    assert len(rows) == 2
    kept += [json.dumps(row) for row in rows]
    assert all("s3cret" not in text for text in kept)


def test_the_notify_flags_win_over_the_config(isolated_xdg, tmp_path):
    from_config, from_flag = tmp_path / "config.jsonl", tmp_path / "flag.jsonl"
    flag = shlex.join(recorder(from_flag))  # the flag's value is split like a shell would
    out = run_cli("--preset", "tiny-cpu", *TWO_STEPS, f"--launch.notify.command={json.dumps(recorder(from_config))}",
                  "--notify-cmd", flag, timeout=120)
    assert out.returncode == 0, out.stderr
    [run] = Registry().all()
    got = events_in(from_flag, {"succeeded", "sweep_done"})
    assert [e["run_id"] for e in got if e["event"] == "succeeded"] == [run.id]
    assert not from_config.exists()


def test_a_url_in_webhook_env_is_one_line_without_the_url(isolated_xdg):
    out = run_cli("--preset", "tiny-cpu", "--launch.notify.webhook_env=https://hooks.example.com/T0KEN-abc")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: launch.notify.webhook_env: must name an environment "
                                               "variable (letters, digits, _), not hold the URL itself"]
    assert "T0KEN" not in out.stdout + out.stderr
    nothing_queued()


def test_an_unset_webhook_variable_is_one_line_and_nothing_is_queued(isolated_xdg, monkeypatch):
    monkeypatch.delenv("OLMO_TEST_UNSET_HOOK", raising=False)
    out = run_cli("--preset", "tiny-cpu", "--launch.notify.webhook_env=OLMO_TEST_UNSET_HOOK")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: launch.notify.webhook_env: $OLMO_TEST_UNSET_HOOK is not set")
    nothing_queued()


def test_the_section_is_typed_and_the_engine_default_is_no_hook():
    assert resolve("tiny-cpu").launch.notify is None
    cfg = resolve("tiny-cpu", overrides=["--launch.notify.command=[notify-send, done]",
                                         "--launch.notify.events=[failed]"])
    assert (cfg.launch.notify.command, cfg.launch.notify.events, cfg.launch.notify.is_set) == \
        (["notify-send", "done"], ["failed"], True)
    assert cfg.launch.notify.stall_after_s == 600
    with pytest.raises(ConfigError) as bad:
        resolve("tiny-cpu", overrides=["--launch.notify.events=[done]"])
    assert "launch.notify.events" in str(bad.value) and "succeeded" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        resolve("tiny-cpu", overrides=["--launch.notify.stall_after_s=0"])
    assert "launch.notify.stall_after_s" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        resolve("tiny-cpu", overrides=["--launch.notify.command=echo done"])  # a string, not an argv list
    assert "launch.notify.command" in str(bad.value)


def test_the_editor_form_shows_the_section():
    from olmo_tui.core.config.form_model import FLOAT, LIST, SECTION, TEXT, leaf_specs, schema_tree

    root = schema_tree()
    [launch] = [spec for spec in root.children if spec.path == "launch"]
    [section] = [spec for spec in launch.children if spec.path == "launch.notify"]
    assert (section.kind, section.optional) == (SECTION, True)
    leaves = leaf_specs(root)
    kinds = {path: (leaves[path].kind, leaves[path].item_kind) for path in
             ("launch.notify.command", "launch.notify.webhook_env", "launch.notify.events", "launch.notify.stall_after_s")}
    assert kinds == {"launch.notify.command": (LIST, TEXT), "launch.notify.webhook_env": (TEXT, None),
                     "launch.notify.events": (LIST, TEXT), "launch.notify.stall_after_s": (FLOAT, None)}
