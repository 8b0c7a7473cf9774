"""A real browser for the suite: Debian's headless Chromium, driven by Selenium through the system
chromedriver, trusting the Graph emulator's TLS certificate (and nothing else it would not).

Run them: `apt-get install -y chromium chromium-driver` once (.ci/run does it), then
`PYTHONPATH=$PWD .venv/bin/pytest tests/browser -n 2`; PNGs go to $PIMBOT_TEST_ARTEFACTS.

Fixtures: ``emulator`` (a running ``GraphEmulator(default_tenant())`` per module) and ``browser``
(a fresh Chromium per test, its profile thrown away after). ``launch_chromium`` and
``certificate_pin`` are there for tests that need a browser trusting some other server.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import shutil
import socket
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from stand_ins.graph_emulator import GraphEmulator, default_tenant

REPO = Path(__file__).resolve().parents[2]
# Debian's packages; nothing on this machine may download a browser build instead.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = (
    "run `apt-get install -y chromium chromium-driver` as root (.ci/run does this), "
    "the browser tests need Debian's Chromium and its chromedriver"
)

# Without the background-networking flags Chromium phones home (component updates, sync,
# variations) and the closed network refuses it; QUIC and the GPU are of no use headless.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the suite runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Even so Chromium looks up accounts.google.com and clients2.google.com at start (seen with
    # strace -f -e trace=sendto). Its own resolver answers "not found" for every name but
    # localhost, so no DNS query leaves the machine (strace shows none with this rule); the
    # emulator's URLs are https://127.0.0.1:port, and IP addresses are never looked up.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--window-size=1280,900",
)
PAGE_LOAD_TIMEOUT_SECONDS = 15


def require_browser(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
    """Fail (not skip) the test when the browser is missing: a skipped browser test would let a
    machine without Chromium pass the suite without ever running them."""
    missing = [str(path) for path in (chromium, chromedriver) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: {INSTALL_HINT}", pytrace=False)


def certificate_pin(host: str, port: int, ca_path: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the leaf certificate ``host:port`` serves, after
    checking that certificate against ``ca_path`` and ``host`` the way an HTTPS client would.

    Why a pin: Chromium on Linux reads no CA file (only the NSS database under $HOME), so the
    emulator's throwaway CA cannot simply be handed to it. ``--ignore-certificate-errors-spki-list``
    makes Chromium accept exactly the certificates carrying these public keys and keeps every other
    certificate fully verified, so a server with any other key (another CA, another leaf) still
    gets the "Privacy error" page; ``--ignore-certificate-errors`` would accept anything. The pin
    itself skips Chromium's name and expiry checks for that one key, which is why the leaf is
    verified here, with Python's ssl module, against the emulator's CA and host name first.
    """
    context = ssl.create_default_context(cafile=str(ca_path))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None, f"{host}:{port} sent no certificate"
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def emulator_pin(emulator: GraphEmulator) -> str:
    return certificate_pin(emulator.host, emulator.port, emulator.ca_path)


def launch_chromium(profile_dir: Path, trusted_pins: Sequence[str] = ()) -> WebDriver:
    """Headless Chromium with a fresh profile in ``profile_dir`` (one per browser, so parallel
    workers never share one), trusting the certificates whose SPKI pins are ``trusted_pins``."""
    require_browser()
    # Selenium Manager (which downloads drivers and browsers) only runs when Service has no
    # driver path; these keep it offline and quiet should any code path reach it anyway.
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    if trusted_pins:
        options.add_argument(f"--ignore-certificate-errors-spki-list={','.join(trusted_pins)}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_SECONDS)
    return driver


def artefacts_dir() -> Path:
    """Where screenshots go, for CI to keep: $PIMBOT_TEST_ARTEFACTS, else tests/artefacts/."""
    configured = os.environ.get("PIMBOT_TEST_ARTEFACTS")
    directory = Path(configured) if configured else REPO / "tests" / "artefacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


_screenshot_numbers = itertools.count(1)


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """Write the page as ``<name>-<worker>-<pid>-<n>.png`` in the artefacts dir; the worker, the
    process and a counter keep parallel workers and parallel runs from overwriting each other."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "screenshot"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = artefacts_dir() / f"{safe}-{worker}-{os.getpid()}-{next(_screenshot_numbers)}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"Chromium could not write the screenshot {path}")
    return path


@pytest.fixture(scope="module")
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator(default_tenant()) as running:
        yield running


@pytest.fixture
def browser(
    emulator: GraphEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebDriver]:
    """A fresh Chromium per test (about a second to start), trusting only ``emulator``'s
    certificate beyond the system's CAs; no cookies or storage carry over between tests."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = launch_chromium(profile, trusted_pins=[emulator_pin(emulator)])
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
