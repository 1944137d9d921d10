"""The notify hook without training: a stalled run is reported once, a failing command or an
unreachable webhook is one line (never the URL), and events not asked for are not sent."""

from __future__ import annotations

import json
import os
import sys
import time

from olmo_tui.core.launch import notify
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root
from olmo_tui.core.sweeps.sweep import NotifySpec, SweepSpec, parse_axis, plan
from olmo_tui.core.launch.sweep_queue import queue_sweep
from olmo_tui.core.launch.sweep_worker import Worker


def recorder(path) -> list:
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + chr(10))", str(path)]


def test_a_stalled_run_is_reported_once(isolated_xdg, tmp_path):
    events = tmp_path / "events.jsonl"
    spec = SweepSpec(preset="tiny-cpu", grid=[parse_axis("init_seed=0")],
                     notify=NotifySpec(command=recorder(events), stall_after_s=5))
    [run] = queue_sweep("stall", spec, plan(spec))
    registry = Registry()
    # As if the run had started long ago and gone quiet (no process: the worker only looks).
    log = runs_root() / run.id / "stdout.log"
    log.write_text("step 1\n")
    old = time.time() - 60
    os.utime(log, (old, old))
    registry.update(run.id, status="running", started=old)
    worker = Worker("stall", registry)
    for _ in range(2):
        worker._check_stalls(registry.of_sweep("stall"), 5)
    got = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["event"], e["run_id"], e["sweep"]) for e in got] == [("stalled", run.id, "stall")]
    assert got[0]["quiet_s"] >= 55


def test_send_reports_problems_in_one_line_without_the_url(monkeypatch, tmp_path):
    run = RunRecord(id="r1", name="r", backend="local", run_dir=str(tmp_path), status="failed", exit_code=1)
    secret_url = "http://127.0.0.1:9/hook/s3cret-token"  # port 9 (discard): nothing listens
    monkeypatch.setenv("HOOK", secret_url)
    spec = NotifySpec(command=[sys.executable, "-c", "import sys; sys.exit('boom')"], webhook_env="HOOK")
    problems = notify.send(spec, notify.payload("failed", run))
    assert problems[0] == "notify command exited 1: boom"
    assert problems[1].startswith("notify webhook ($HOOK) failed: ") and "s3cret" not in " ".join(problems)
    only_done = NotifySpec(command=[sys.executable, "-c", "raise SystemExit(3)"], events=["sweep_done"])
    assert notify.send(only_done, notify.payload("failed", run)) == []  # not asked for: not sent
    monkeypatch.delenv("HOOK")
    assert notify.send(NotifySpec(webhook_env="HOOK"), notify.payload("failed", run)) == \
        ["notify webhook: $HOOK is not set"]


def test_a_single_run_with_a_hook_is_a_sweep_of_one(isolated_xdg):
    from cli_helpers import run_cli

    [variant] = plan(SweepSpec(preset="tiny-cpu", notify=NotifySpec(command=["true"])))
    assert variant.run_name == "tiny-cpu" and variant.changes == []
    out = run_cli("--preset", "tiny-cpu", "--notify-cmd", "notify-send done", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    assert [v["run_name"] for v in json.loads(out.stdout)["variants"]] == ["tiny-cpu"]
    assert run_cli("sweep", "--preset", "tiny-cpu").returncode == 2  # no axes and no hook: nothing to do


def test_each_alert_is_sent_once_even_by_a_restarted_worker(isolated_xdg, tmp_path):
    events = tmp_path / "events.jsonl"
    spec = SweepSpec(preset="tiny-cpu", grid=[parse_axis("init_seed=0")], notify=NotifySpec(command=recorder(events)))
    [run] = queue_sweep("alerts", spec, plan(spec))
    registry = Registry()
    registry.update(run.id, status="running", started=time.time())
    metrics = runs_root() / run.id / "metrics.jsonl"
    alert = {"kind": "loss_spike", "action": "warn", "value": 9.0, "threshold": 4.5, "message": "loss 9 ..."}
    metrics.write_text(json.dumps({"step": 1, "loss": 4.0}) + "\n" + json.dumps({"step": 2, "alerts": [alert]}) + "\n"
                       + '{"step": 3, "alerts": [{"kind": "non_fin')  # a line still being written
    worker = Worker("alerts", registry)
    worker._check_alerts(registry.of_sweep("alerts"))
    worker._check_alerts(registry.of_sweep("alerts"))
    with open(metrics, "a") as f:
        f.write('ite", "action": "stop"}]}\n')
    Worker("alerts", registry)._check_alerts(registry.of_sweep("alerts"))  # a restart reads from the start
    got = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["event"], e["alert_step"], e["alert"]["kind"]) for e in got] == [
        ("alert", 2, "loss_spike"), ("alert", 3, "non_finite")]
    assert got[0]["alert"] == alert and got[0]["run_id"] == run.id
