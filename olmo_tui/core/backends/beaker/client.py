"""beaker-py behind a time limit.

beaker-py retries an unreachable server forever (UNAVAILABLE is "expected" for Get/List/
Resolve calls, with 2 s sleeps) and sets no gRPC deadline. So every call here runs in a
daemon thread that the caller waits on for at most `timeout_s`; past that the client is
closed (which ends the thread's blocked or sleeping call) and the user gets one clear line.
A closed client stays closed (`_StayClosedBeaker`), because beaker-py would otherwise open a
fresh channel on the abandoned thread's next retry and keep going in the background.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from ..base import BackendError

if TYPE_CHECKING:
    from beaker import Beaker

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 20.0


class BeakerNotFound(BackendError):
    """The workload or job is gone (deleted, or another Beaker account's)."""


class ClientClosed(Exception):
    """Raised inside an abandoned call once its client was closed."""


def _client_class():
    from beaker import Beaker

    class _StayClosedBeaker(Beaker):
        _closed = False

        @property
        def service(self):
            if self._closed:
                raise ClientClosed("the Beaker client was closed")
            return super().service

        def close(self):
            self._closed = True
            super().close()

    return _StayClosedBeaker


def make_client(workspace: Optional[str] = None) -> "Beaker":
    """A client configured the way the `beaker` CLI is (BEAKER_TOKEN, ~/.beaker/config.yml or
    $BEAKER_CONFIG), with no upgrade check (it would call PyPI and write to ~/.beaker)."""
    from beaker.config import Config
    from beaker.exceptions import BeakerConfigurationError

    overrides = {"default_workspace": workspace} if workspace else {}
    try:
        config = Config.from_env(**overrides)
    except BeakerConfigurationError as exc:
        raise BackendError(
            f"Beaker is not configured ({exc}): set BEAKER_TOKEN, or run `beaker config set user_token`"
        ) from None
    return _client_class()(config, check_for_upgrades=False)


def describe_error(exc: BaseException, what: str) -> BackendError:
    """One line for the user; never the token (beaker-py's messages do not carry it)."""
    import grpc
    import requests
    from beaker import exceptions as bx

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, (bx.BeakerWorkloadNotFound, bx.BeakerJobNotFound, bx.BeakerExperimentNotFound)):
        return BeakerNotFound(f"Beaker does not know this workload any more ({what})")
    if isinstance(exc, (bx.BeakerWorkspaceNotFound, bx.BeakerWorkspaceNotSet)):
        return BackendError(f"Beaker workspace problem while {what}: {exc}; set launch.beaker.workspace "
                            "(e.g. --launch.beaker.workspace=ai2/my-team)")
    if isinstance(exc, bx.BeakerPermissionsError):
        return BackendError(f"Beaker refused while {what}: permission denied ({exc}); check your token")
    if isinstance(exc, (bx.BeakerServerUnavailableError, requests.ConnectionError, requests.Timeout)):
        return BackendError(f"Beaker is unreachable while {what}: {type(exc).__name__}")
    if isinstance(exc, bx.BeakerError):
        return BackendError(f"Beaker error while {what}: {exc}")
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if isinstance(exc, grpc.Call) else None
        return BackendError(f"Beaker error while {what}: {getattr(code, 'name', 'RPC failed')}")
    return BackendError(f"Beaker call failed while {what}: {type(exc).__name__}: {exc}")


class BeakerClient:
    """Runs beaker-py calls with a time limit. Thread-safe; one shared client for short calls,
    replaced after a timeout. Log streams get their own client (`new_client`) so that closing
    it stops exactly that stream."""

    def __init__(self, factory: Callable[[], "Beaker"] = make_client, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.factory = factory
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: Optional["Beaker"] = None
        # After a call timed out, calls fail at once for `cooldown_s` instead of each waiting
        # out its own limit: the runs table refreshes every second and must not stall.
        self.cooldown_s = min(self.timeout_s, 10.0)
        self._down_until = 0.0
        self._down_reason = ""

    def new_client(self) -> "Beaker":
        return self.factory()

    def _shared(self) -> "Beaker":
        with self._lock:
            if self._client is None:
                self._client = self.factory()
            return self._client

    def _drop(self, client: "Beaker") -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def call(self, fn: Callable[["Beaker"], T], what: str, timeout_s: Optional[float] = None) -> T:
        """fn(client) in a worker thread; BackendError after `timeout_s` or on any Beaker error."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        if time.monotonic() < self._down_until:
            raise BackendError(self._down_reason)
        client = self._shared()
        box: dict = {}

        def work() -> None:
            try:
                box["value"] = fn(client)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"beaker: {what}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            self._drop(client)
            address = getattr(getattr(client, "config", None), "rpc_address", "Beaker")
            self._down_reason = f"Beaker ({address}) did not answer within {limit:g} s while {what}; is it reachable?"
            self._down_until = time.monotonic() + self.cooldown_s
            raise BackendError(self._down_reason)
        if "error" in box:
            raise describe_error(box["error"], what) from None
        self._down_until = 0.0
        return box["value"]

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
