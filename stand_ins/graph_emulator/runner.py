"""``pimbot emulator``: run the emulator in the foreground and print the environment to use."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from stand_ins.graph_emulator.faults import Faults
from stand_ins.graph_emulator.server import GraphEmulator
from stand_ins.graph_emulator.tenant import default_tenant, load_tenant


def environment_block(env: Mapping[str, str]) -> str:
    """``export NAME=value`` lines, quoted for a POSIX shell."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def run_emulator(
    tenant_file: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8443,
    ca_path: Path | None = None,
    *,
    faults: Faults | Mapping[str, Any] | None = None,
    hostnames: tuple[str, ...] = (),
    stop: threading.Event | None = None,
    out: TextIO | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM (or until ``stop`` is set), after printing the env block.

    tenant_file: YAML fixture (see stand_ins/demo_tenant.yaml); None = the demo tenant.
    host, port: where to listen (port 0 picks a free one); the URL printed says which.
    ca_path: where to write the CA certificate clients must trust; None = a temporary file.
    faults: initial fault knobs, a Faults or the JSON settings of ``POST /_emulator/faults``.
    hostnames: extra names for the server certificate (e.g. a Docker service name).
    stop: an Event that ends the run when set (tests; the CLI relies on signals).
    out: where the environment block goes; default stdout.
    """
    tenant = load_tenant(tenant_file) if tenant_file is not None else default_tenant()
    out = out or sys.stdout
    stop = stop or threading.Event()
    emulator = GraphEmulator(
        tenant, host=host, port=port, ca_path=ca_path, faults=faults, hostnames=hostnames
    )
    restore = _on_signals(stop)
    try:
        with emulator:
            print(
                f"# Graph PIM emulator for tenant {tenant.display_name} on {emulator.url}", file=out
            )
            print("# Paste into the shell that runs pimbot:", file=out)
            print(environment_block(emulator.env()), file=out, flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM (and SIGINT) set ``stop``; returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
