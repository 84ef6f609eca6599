"""Drives Swagger UI at /docs/ in headless Chromium against the dev profile, as a person would.

Starts the debug binary's dev profile on a free loopback port with a throwaway data directory
(as the other CI scripts do), opens /docs/, and for a staff, a patient and a proxy persona in
turn: clicks Authorize, signs in with the issuer's OpenID Connect scheme (authorization code with
PKCE, the persona picked on the dev identity provider's page), runs "Try it out" on one call and
requires the UI to show a 2xx answer carrying the token; then logs out. A system client does the
same with client credentials. No token is copied by hand. Stops the
gateway and the browser on the way out; bounded in time. Needs Debian's `chromium` and
`chromium-driver` and selenium.

    python3 .ci/swagger_ui.py      # GP_GATEWAY_BINARY=path to run another build
                                   # SWAGGER_UI_SCREENSHOTS=dir keeps a screenshot of each failure
"""
import os
import sys

from selenium.common.exceptions import NoSuchWindowException, TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from headless import Failed, browser, run_bounded

WAIT = 30  # seconds for any one thing to appear
DEADLINE = 300  # seconds for the whole run

# (persona, the issuer's scheme in the document, the operation, its parameters, what is shown);
# people choose themselves on the provider's page, a system client types its client id.
JOURNEYS = [
    ("staff-emis", "dev-staff", ("get", "/Patient"), {"family": "smith"}, "patient-jane-smith"),
    ("patient-p9", "dev-patient", ("get", "/$my-access"), {}, "patient-jane-smith"),
    ("proxy-p9", "dev-patient", ("get", "/Patient/{id}/$service-access"),
     {"id": "patient-lily-jones", "service": "appointments"}, "appointments"),
    ("proxy-app", "dev-system", ("get", "/Organization"), {}, "practice-a81001"),
]
SYSTEM_CLIENTS = {"proxy-app"}


def wait_for(driver, condition, what, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        raise Failed(f"timed out after {timeout} s waiting for {what}") from None


def auth_container(driver, scheme):
    """The Authorize dialog's section for one security scheme."""
    def find(d):
        for container in d.find_elements(By.CSS_SELECTOR, ".dialog-ux .auth-container"):
            headings = container.find_elements(By.TAG_NAME, "h4")
            if headings and headings[0].text.split(" ")[0] == scheme:
                return container
        return False
    return wait_for(driver, find, f"the {scheme} scheme in the Authorize dialog")


def open_authorize_dialog(driver):
    button = wait_for(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, ".scheme-container .btn.authorize")),
                      "the Authorize button")
    button.click()
    wait_for(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")),
             "the Authorize dialog")


def close_authorize_dialog(driver):
    driver.find_element(By.CSS_SELECTOR, ".dialog-ux .modal-ux-header .close-modal").click()
    wait_for(driver, EC.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")),
             "the Authorize dialog to close")


def button_named(container, label):
    for button in container.find_elements(By.TAG_NAME, "button"):
        if button.text.strip() == label:
            return button
    return None


def sign_in(driver, scheme, persona):
    """Authorize with the scheme's authorization-code flow, choosing the persona in the popup."""
    main = driver.current_window_handle
    open_authorize_dialog(driver)
    container = auth_container(driver, scheme)
    heading = container.find_element(By.TAG_NAME, "h4").text
    if "authorization_code with PKCE" not in heading:
        raise Failed(f"{scheme} is offered as {heading!r}, not the authorization-code flow with PKCE")
    client_id = container.find_element(By.CSS_SELECTOR, "input[type=text]").get_attribute("value")
    if not client_id:
        raise Failed(f"{scheme}: Swagger UI has no client id filled in")
    before = set(driver.window_handles)
    authorize = button_named(container, "Authorize")
    if authorize is None:
        raise Failed(f"{scheme}: no Authorize button in its section (already signed in?)")
    authorize.click()
    popup = wait_for(driver, lambda d: (set(d.window_handles) - before or {False}).pop(),
                     "the sign-in window")
    driver.switch_to.window(popup)
    choice = wait_for(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, f"button[name=login_hint][value='{persona}']")),
                      f"{persona} on the identity provider's page")
    print(f"  {persona}: chose on {driver.current_url.split('?')[0]}")
    choice.click()
    # The redirect page hands the code to Swagger UI and closes itself.
    try:
        wait_for(driver, lambda d: popup not in d.window_handles, "the sign-in window to close")
    except NoSuchWindowException:
        pass
    driver.switch_to.window(main)
    container = auth_container(driver, scheme)
    wait_for(driver, lambda d: button_named(auth_container(d, scheme), "Logout"),
             f"{scheme} to show as signed in")
    errors = container.find_elements(By.CSS_SELECTOR, ".errors")
    if errors and errors[0].text.strip():
        raise Failed(f"{scheme}: {errors[0].text.strip()}")
    close_authorize_dialog(driver)


def sign_in_as_client(driver, scheme, client_id):
    """Authorize with the scheme's client credentials flow: the client id typed, any secret."""
    open_authorize_dialog(driver)
    container = auth_container(driver, scheme)
    heading = container.find_element(By.TAG_NAME, "h4").text
    if "client_credentials" not in heading:
        raise Failed(f"{scheme} is offered as {heading!r}, not client credentials")
    client = container.find_element(By.CSS_SELECTOR, "input[data-name=clientId]")
    client.clear()
    client.send_keys(client_id)
    container.find_element(By.CSS_SELECTOR, "input[data-name=clientSecret]").send_keys("any secret")
    button_named(container, "Authorize").click()
    print(f"  {client_id}: client credentials")
    wait_for(driver, lambda d: button_named(auth_container(d, scheme), "Logout"),
             f"{scheme} to show as signed in")
    close_authorize_dialog(driver)


def load(driver, base):
    driver.get(f"{base}/docs/")
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")),
             "Swagger UI to load the document")


def still_signed_in_after_reload(driver, base, scheme):
    """Swagger UI keeps the sign-in in the browser (persistAuthorization)."""
    load(driver, base)
    open_authorize_dialog(driver)
    wait_for(driver, lambda d: button_named(auth_container(d, scheme), "Logout"),
             f"{scheme} to be still signed in after a reload")
    close_authorize_dialog(driver)
    print(f"  {scheme}: still signed in after a reload")


def sign_out(driver, scheme):
    open_authorize_dialog(driver)
    logout = button_named(auth_container(driver, scheme), "Logout")
    if logout is None:
        raise Failed(f"{scheme}: no Logout button")
    logout.click()
    wait_for(driver, lambda d: button_named(auth_container(d, scheme), "Authorize"), f"{scheme} to sign out")
    close_authorize_dialog(driver)


def operation(driver, method, path):
    def find(d):
        for block in d.find_elements(By.CSS_SELECTOR, f".opblock.opblock-{method}"):
            shown = block.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
            if shown and shown[0].get_attribute("data-path") == path:
                return block
        return False
    return wait_for(driver, find, f"{method.upper()} {path} in the page")


def try_it_out(driver, method, path, params, expect):
    block = operation(driver, method, path)
    if "is-open" not in block.get_attribute("class"):
        summary = block.find_element(By.CSS_SELECTOR, ".opblock-summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
        summary.click()
    try_button = wait_for(driver, lambda d: block.find_element(By.CSS_SELECTOR, ".try-out__btn"),
                          f"Try it out on {method.upper()} {path}")
    if try_button.text.strip() == "Try it out":
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", try_button)
        try_button.click()
    for name, value in params.items():
        field = wait_for(driver, lambda d: block.find_element(
            By.CSS_SELECTOR, f"tr[data-param-name='{name}'] input, tr[data-param-name='{name}'] select"),
            f"the {name} parameter")
        if field.tag_name == "select":
            field.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
        else:
            field.clear()
            field.send_keys(value)
    execute = wait_for(driver, lambda d: block.find_element(By.CSS_SELECTOR, ".execute-wrapper .btn.execute"),
                       "the Execute button")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", execute)
    execute.click()
    status = wait_for(driver, lambda d: (block.find_elements(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status") or [False])[0],
        f"the answer to {method.upper()} {path}")
    code = status.text.strip().split()[0] if status.text.strip() else ""
    body = "\n".join(e.text for e in block.find_elements(By.CSS_SELECTOR, ".live-responses-table .response-col_description"))
    curl = "\n".join(e.text for e in block.find_elements(By.CSS_SELECTOR, ".curl-command"))
    # Clear for the next journey, which may run the same operation.
    clear = block.find_elements(By.CSS_SELECTOR, ".btn-clear")
    if not code.startswith("2"):
        raise Failed(f"{method.upper()} {path} answered {code!r} in the UI:\n{body[:1500]}")
    if "Authorization: Bearer" not in curl:
        raise Failed(f"{method.upper()} {path}: the request Swagger UI shows carries no bearer token:\n{curl}")
    if expect not in body:
        raise Failed(f"{method.upper()} {path} answered {code} without {expect!r}:\n{body[:1500]}")
    if clear:
        clear[0].click()
    return code


def run(base):
    driver = browser(1400, 1000, WAIT)
    try:
        load(driver, base)
        for persona, scheme, (method, path), params, expect in JOURNEYS:
            try:
                if persona in SYSTEM_CLIENTS:
                    sign_in_as_client(driver, scheme, persona)
                else:
                    sign_in(driver, scheme, persona)
                if persona == JOURNEYS[0][0]:
                    still_signed_in_after_reload(driver, base, scheme)
                code = try_it_out(driver, method, path, params, expect)
                print(f"ok   {persona}: signed in with {scheme}, {method.upper()} {path} -> {code} in the UI")
                sign_out(driver, scheme)
            except (Failed, WebDriverException) as error:
                print(f"FAIL {persona}: {error}")
                keep = os.environ.get("SWAGGER_UI_SCREENSHOTS")
                if keep:
                    os.makedirs(keep, exist_ok=True)
                    for handle in driver.window_handles:
                        driver.switch_to.window(handle)
                        driver.save_screenshot(os.path.join(keep, f"{persona}-{handle[-6:]}.png"))
                return 1
    finally:
        driver.quit()
    return 0


def main():
    return run_bounded("/docs/", lambda gateway: run(gateway.base), DEADLINE, "every persona signed in and called")


if __name__ == "__main__":
    sys.exit(main())
