"""The optional notification hook: on a run's end (succeeded / failed), a stall, a stability
alert (`alert`: the alert record rides along as `alert`, its step as `alert_step`) or a sweep's
end, call the user's command and/or POST to a webhook.

- The command is an argv list run without a shell; the event arrives as JSON on its stdin and
  as OLMO_TUI_* environment variables. It gets 30 s.
- The webhook URL is never stored: the config names an environment variable, read when
  sending. Errors are reported without the URL (it often embeds a token).

Failures are logged by the caller (the sweep worker's log) and never stop the sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

from ..runs.registry import RunRecord
from ..runs.run_status import RunStatus
from ..sweeps.sweep import NotifySpec

COMMAND_TIMEOUT_S = 30
WEBHOOK_TIMEOUT_S = 10


def event_for(run: RunRecord) -> Optional[str]:
    """'succeeded' or 'failed' for an ended run (cancelled and lost count as failed: the run did
    not finish), None while it is active."""
    if not run.terminal:
        return None
    return "succeeded" if run.status == RunStatus.SUCCEEDED else "failed"


def payload(event: str, run: Optional[RunRecord] = None, sweep: Optional[str] = None,
            **extra: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"event": event, "sweep": sweep or (run.sweep if run else None)}
    if run is not None:
        data.update(run_id=run.id, run_name=run.name, status=run.status, exit_code=run.exit_code,
                    message=run.message, step=run.latest_step, loss=run.summary.get("loss"))
    data.update(extra)
    return data


def send(spec: NotifySpec, data: Dict[str, Any]) -> List[str]:
    """Deliver one event; returns what went wrong (one line each, no URL), empty when all went."""
    if data["event"] not in spec.events:
        return []
    problems: List[str] = []
    body = json.dumps(data).encode()
    if spec.command:
        env = {**os.environ, "OLMO_TUI_EVENT": data["event"], "OLMO_TUI_RUN_ID": data.get("run_id") or "",
               "OLMO_TUI_RUN_STATUS": data.get("status") or "", "OLMO_TUI_SWEEP": data.get("sweep") or ""}
        try:
            done = subprocess.run(spec.command, input=body, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT_S)
            if done.returncode != 0:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                problems.append(f"notify command exited {done.returncode}: {tail[0][:200]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"notify command {spec.command[0]!r} failed: {type(exc).__name__}")
    if spec.webhook_env:
        url = os.environ.get(spec.webhook_env)
        if not url:
            problems.append(f"notify webhook: ${spec.webhook_env} is not set")
        else:
            problems.extend(_post(url, body, spec.webhook_env))
    return problems


def _post(url: str, body: bytes, env_name: str) -> List[str]:
    if not url.startswith(("https://", "http://")):
        return [f"notify webhook: ${env_name} does not hold an http(s) URL"]
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        return [f"notify webhook (${env_name}) answered HTTP {exc.code}"]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [f"notify webhook (${env_name}) failed: {type(exc).__name__}"]
    return []
