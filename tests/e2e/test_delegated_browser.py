"""Delegated mode in a real browser (headless Chromium): the link from Slack, the emulator's
sign-in and MFA pages, Microsoft's form_post back to pimbot's /auth/callback page, then an MFA
role activated as the person; and the authentication-context step-up, after which pimbot
activates without the person asking again. Screenshots of the callback pages are kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import emulator_pin, launch_chromium, save_screenshot
from tests.e2e.conftest import ADA, ADA_ENTRA, GLOBAL_ADMIN, GRACE, PRA, Stack
from tests.e2e.test_delegated import PEOPLE, SECURITY_ADMIN, self_requests, sign_in_link


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(delegated=True)


@pytest.fixture
def browser(stack: Stack, tmp_path: Path) -> Iterator[WebDriver]:
    driver = launch_chromium(tmp_path / "profile", trusted_pins=(emulator_pin(stack.emu),))
    try:
        yield driver
    finally:
        driver.quit()


def _present(driver: WebDriver, element_id: str) -> bool:
    try:
        driver.find_element(By.ID, element_id)
    except NoSuchElementException:
        return False
    return True


def sign_in_in_browser(driver: WebDriver, url: str, who: str = "ada") -> str:
    """Follow Microsoft's (the emulator's) pages as a person would; the outcome heading of
    pimbot's callback page."""
    username, password, code = PEOPLE[who]
    driver.get(url)
    for _ in range(8):
        WebDriverWait(driver, 20).until(
            lambda d: any(_present(d, i) for i in ("password", "otc", "contexts", "outcome"))
        )
        if _present(driver, "outcome"):
            return str(driver.find_element(By.ID, "outcome").text)
        if _present(driver, "password"):
            field = driver.find_element(By.ID, "username")
            field.clear()  # pimbot's login_hint prefills it
            field.send_keys(username)
            driver.find_element(By.ID, "password").send_keys(password)
        elif _present(driver, "otc"):
            driver.find_element(By.ID, "otc").send_keys(code)
        driver.find_element(By.ID, "submit").click()
    raise AssertionError(f"the sign-in did not reach pimbot's page: {driver.current_url}")


def test_connect_in_a_browser_then_an_mfa_role_activates_as_the_person(
    stack: Stack, browser: WebDriver
) -> None:
    stack.sender.command("/pim", "connect", user=ADA)
    heading = sign_in_in_browser(browser, sign_in_link(stack, ADA))
    save_screenshot(browser, "callback-connected")
    assert heading == "Connected as ada@contoso.example"
    assert browser.current_url == stack.public_url + "/auth/callback"  # no code in the URL
    assert "go back to Slack" in browser.page_source
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    [made] = stack.wait(lambda: self_requests(stack, "selfActivate"), what="selfActivate")
    assert made["principalId"] == ADA_ENTRA and made["createdBy"]["user"]["id"] == ADA_ENTRA


def test_an_authentication_context_step_up_in_a_browser_activates_by_itself(
    stack: Stack, browser: WebDriver
) -> None:
    stack.sender.command("/pim", "connect", user=ADA)
    sign_in_in_browser(browser, sign_in_link(stack, ADA))
    stack.request(ADA, {"duration": "PT1H", "reason": "Tune the alert rules"}, SECURITY_ADMIN)
    step_up = sign_in_link(stack, ADA, after=1)
    heading = sign_in_in_browser(browser, step_up)
    save_screenshot(browser, "callback-step-up-activated")
    assert heading == "Connected as ada@contoso.example"
    assert "Security Administrator: active now." in browser.page_source
    [made] = self_requests(stack, "selfActivate")
    assert made["principalId"] == ADA_ENTRA
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")


def test_the_wrong_account_in_a_browser_gets_a_clear_refusal_page(
    stack: Stack, browser: WebDriver
) -> None:
    stack.sender.command("/pim", "connect", user=ADA)
    heading = sign_in_in_browser(browser, sign_in_link(stack, ADA), "grace")
    save_screenshot(browser, "callback-wrong-account")
    assert heading == "Signed in with the wrong account"
    assert "Nothing was stored" in browser.page_source
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


def test_grace_approves_pims_approval_after_signing_in_in_a_browser(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    from tests.e2e.test_pim_approvals import (
        GRACE_ENTRA,
        PINNED,
        _ask,
        _pim_card,
        _steps,
        approve_in_pim,
    )

    stack = make_stack(PINNED, delegated=True)
    driver = launch_chromium(tmp_path / "grace", trusted_pins=(emulator_pin(stack.emu),))
    try:
        stack.sender.command("/pim", "connect", user=ADA)
        sign_in_in_browser(driver, sign_in_link(stack, ADA))
        driver.delete_all_cookies()
        _ask(stack, PRA)
        approve_in_pim(stack, GRACE, _pim_card(stack))
        heading = sign_in_in_browser(driver, sign_in_link(stack, GRACE), "grace")
        save_screenshot(driver, "callback-approver-decided")
        assert heading == "Connected as grace@contoso.example"
        assert "Your decision is recorded in PIM" in driver.page_source
    finally:
        driver.quit()
    [step] = _steps(stack)
    assert step["reviewResult"] == "Approve" and step["reviewedBy"]["id"] == GRACE_ENTRA
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    [made] = self_requests(stack, "selfActivate")
    assert made["principalId"] == ADA_ENTRA
