"""The browser fixture works end to end: real Chromium, real HTTPS to the emulator, real TLS
checks (a certificate the emulator's pin does not cover gets Chromium's "Privacy error" page)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager

from stand_ins.graph_emulator import GraphEmulator
from tests.browser.conftest import launch_chromium, require_browser, save_screenshot

OTHER_CA_MARKER = "served with a certificate from another CA"


def _discovery_url(emulator: GraphEmulator) -> str:
    tenant_id = emulator.tenant.tenant_id
    return f"{emulator.authority_host}/{tenant_id}/v2.0/.well-known/openid-configuration"


def _assert_privacy_error(driver: WebDriver, marker: str) -> None:
    # Chromium's certificate interstitial; the page behind it must never have been rendered.
    source = driver.page_source
    assert driver.title == "Privacy error", driver.title
    assert "ERR_CERT_AUTHORITY_INVALID" in source
    assert marker not in source


class _OtherCaPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"<html><head><title>other</title></head><body>{OTHER_CA_MARKER}</body></html>"
        encoded = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_ca_server() -> Iterator[str]:
    """An HTTPS page on 127.0.0.1 whose certificate comes from a second, unrelated trustme CA."""
    ca = trustme.CA(organization_name="not the Graph emulator")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherCaPage)
    server.daemon_threads = True
    # Handshake in the connection's thread: a failed one must not block the accept loop.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_browser_reads_the_emulators_discovery_document(
    browser: WebDriver, emulator: GraphEmulator
) -> None:
    browser.get(_discovery_url(emulator))

    # Chromium shows a JSON response as text in a <pre>.
    document = json.loads(browser.find_element(By.TAG_NAME, "pre").text)
    tenant_id = emulator.tenant.tenant_id
    assert document["issuer"] == f"{emulator.authority_host}/{tenant_id}/v2.0"
    assert document["token_endpoint"] == (
        f"{emulator.authority_host}/{tenant_id}/oauth2/v2.0/token"
    )
    screenshot = save_screenshot(browser, "emulator-openid-configuration")
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_certificate_from_another_ca_gets_the_privacy_error(
    browser: WebDriver, other_ca_server: str
) -> None:
    browser.get(other_ca_server)

    _assert_privacy_error(browser, OTHER_CA_MARKER)
    save_screenshot(browser, "other-ca-privacy-error")


def test_without_the_pin_the_emulator_is_not_trusted(
    emulator: GraphEmulator, tmp_path: Path
) -> None:
    # The pin, not a blanket "ignore certificate errors", is what makes the emulator trusted.
    driver = launch_chromium(tmp_path / "profile", trusted_pins=())
    try:
        driver.get(_discovery_url(emulator))
        _assert_privacy_error(driver, "token_endpoint")
    finally:
        driver.quit()


def test_selenium_manager_is_never_asked(
    monkeypatch: pytest.MonkeyPatch, emulator: GraphEmulator, tmp_path: Path
) -> None:
    # Selenium Manager is the part of Selenium that downloads drivers and browsers.
    def refuse(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager was asked for a driver or a browser")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    driver = launch_chromium(tmp_path / "profile")
    try:
        driver.get("about:blank")
        assert driver.capabilities["browserName"] == "chrome"
    finally:
        driver.quit()


def test_a_missing_browser_fails_and_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        require_browser(chromium=tmp_path / "chromium", chromedriver=tmp_path / "chromedriver")

    message = str(failure.value)
    assert str(tmp_path / "chromium") in message
    assert str(tmp_path / "chromedriver") in message
    assert "apt-get install -y chromium chromium-driver" in message
