"""Drives the practice console at /console/ in headless Chromium against the dev profile, as the
practice's staff would, and checks every page it visits for accessibility and reflow.

Starts the debug binary's dev profile on a free loopback port with a throwaway data directory
(as the other CI scripts do). In the browser, a practice administrator (staff-emis) signs in by
choosing themselves on the dev identity provider's page, registers two patients for online
services (one attempt without the coercion confirmation is refused and changes nothing), reads
each registration letter, approves a parent's proxy request for a 12-year-old and refuses
another, moves the practice to opt-in and follows the move to its end. Forged forms (no CSRF
token, another site's Origin, a cross-site fetch, a signed-out session's cookie) are refused
and change nothing, and the refusals are on the audit trail. A receptionist (reception-emis)
who tries to register a patient is told their role does not allow it.

Every console page is checked with axe-core (WCAG 2.0, 2.1 and 2.2 A and AA rules; a serious or
critical violation fails the run) and for a horizontal scrollbar at 1280 px and 768 px wide,
and a full-page screenshot of each is kept. A broken flow stops the run at once; page defects
are collected and listed at the end. Stops the gateway and the browser on the way out; bounded
in time. Needs Debian's `chromium` and `chromium-driver`, selenium, requests and axe-core:

    npm install --prefix .ci axe-core@4.10
    python3 .ci/console_ui.py      # GP_GATEWAY_BINARY=path to run another build
                                   # CONSOLE_SCREENSHOTS=dir for the screenshots
                                   # (default .ci/console-screenshots)
"""
import base64
import glob
import json
import os
import sys
import time
import traceback
import uuid
from datetime import date
from urllib.parse import urlparse

import requests
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from headless import Failed, browser, run_bounded

HERE = os.path.dirname(os.path.abspath(__file__))
AXE = os.path.join(HERE, "node_modules", "axe-core", "axe.min.js")
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS", os.path.join(HERE, "console-screenshots"))
WAIT = 30  # seconds for any one thing to appear
JOB_WAIT = 180  # seconds for the move to opt-in to finish
DEADLINE = 360  # seconds for the whole run
WIDTHS = (1280, 768)  # a desktop and a tablet
HEIGHT = 900
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = {"serious", "critical"}

PRACTICE = "A81001"
LUCY = ("patient-lucy-evans", "Lucy Evans", "Evans")
GRACE = ("patient-grace-okafor", "Grace Okafor", "Okafor")
# Never registered in the seed: the forged forms and the receptionist aim at him.
DANIEL = ("patient-daniel-jones", "Daniel Jones", "9990000182")
# Oliver Smith, 12, at A81001; his mother Jane Smith asks to act for him, and so does Daniel
# Jones, who has no legal basis.
CHILD = {"nhs": "9990000026", "first": "Oliver", "family": "Smith", "born": "2014-09-12"}
PARENT = "9990000018"
STRANGER = "9990000182"
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "vrs-request-examples.json")


def wait_for(driver, condition, what, timeout=WAIT):
    """Waits for the condition; an error while a page is replaced by the next counts as not yet."""
    last = []

    def steady(d):
        try:
            return condition(d)
        except WebDriverException as error:
            last[:] = [error.msg]
            return False
    try:
        return WebDriverWait(driver, timeout).until(steady)
    except TimeoutException:
        also = f"; last error: {last[0]}" if last else ""
        raise Failed(f"timed out after {timeout} s waiting for {what} (at {driver.current_url}){also}") from None


# What axe found, reduced to what a report needs.
AXE_RUN = r"""
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done({violations: r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 200),
                                why: (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 300)}))}))}))
  .catch(e => done({error: String(e)}));
"""

# The elements that reach past the window's right edge, to say what makes a page too wide.
TOO_WIDE = r"""
const out = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.right > window.innerWidth + 1 && getComputedStyle(el).display !== 'none') {
    const classes = typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\s+/).join('.') : '';
    out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + classes +
             ' (right edge ' + Math.round(r.right) + ' px)');
  }
}
return out.slice(0, 6);
"""

SUMMARY_VALUE = """
for (const row of document.querySelectorAll(arguments[1] + ' dl.summary > div')) {
  const dt = row.querySelector('dt'), dd = row.querySelector('dd');
  if (dt && dd && dt.textContent.trim() === arguments[0]) { return dd.textContent.trim(); }
}
return null;
"""


class Console:
    """The browser on the console, and every page it visited with what was wrong with it."""

    def __init__(self, driver, gw):
        self.driver = driver
        self.gw = gw
        self.base = gw.base
        self.shots = 0
        self.pages = 0
        self.step = "starting"
        # (kind, rule or width, target) -> [what, {page labels}]
        self.defects = {}
        self.notes = {}
        self.tokens = {}
        with open(AXE, encoding="utf-8") as f:
            self.axe = f.read()

    # --- the API, beside the browser, to see what really changed

    def token(self, persona):
        if persona not in self.tokens:
            self.tokens[persona] = self.gw.token(persona)
        return self.tokens[persona]

    def api(self, method, path, token, body=None, expect=None):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json",
                   "X-Request-ID": str(uuid.uuid4())}
        if body is not None:
            headers["Content-Type"] = "application/fhir+json"
        r = requests.request(method, f"{self.base}{path}", headers=headers,
                             data=None if body is None else json.dumps(body), timeout=WAIT)
        if expect is not None and r.status_code not in expect:
            raise Failed(f"{method} {path} answered {r.status_code}, not {expect}: {r.text[:800]}")
        return r

    def account(self, patient_id):
        """The patient's online account as the API gives it, or None."""
        r = self.api("GET", f"/Patient/{patient_id}/$online-account", self.token("staff-emis"), expect=(200, 404))
        return r.json() if r.status_code == 200 else None

    def role_status(self, role_id):
        r = self.api("GET", f"/Consent/{role_id}", self.token("staff-emis"), expect=(200,))
        body = r.json()
        if body.get("resourceType") == "Bundle":
            body = next((e["resource"] for e in body.get("entry", [])
                         if e.get("resource", {}).get("resourceType") == "Consent"), {})
        return body.get("status")

    # --- the browser

    def begin(self, step):
        self.step = step
        print(f"== {step}")

    def path(self):
        return urlparse(self.driver.current_url).path

    def main_text(self):
        return self.driver.find_element(By.TAG_NAME, "main").text

    def heading(self):
        found = self.driver.find_elements(By.CSS_SELECTOR, "main h1")
        return found[0].text.strip() if found else ""

    def expect_heading(self, title):
        wait_for(self.driver, lambda d: self.heading() == title,
                 f"the page headed {title!r} (the page is headed {self.heading()!r})")

    def summary(self, label, scope="main"):
        return self.driver.execute_script(SUMMARY_VALUE, label, scope)

    def open(self, path):
        self.driver.get(f"{self.base}{path}")
        self.loaded()

    def loaded(self):
        wait_for(self.driver, lambda d: d.execute_script("return document.readyState") == "complete",
                 "the page to load")

    def click_away(self, element, what):
        """Clicks something that leads to another page, and waits until that page has loaded:
        the old document is marked, and the new one is not."""
        self.driver.execute_script("window.consoleUiLeaving = true;"
                                   "arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        wait_for(self.driver, lambda d: d.execute_script(
            "return !window.consoleUiLeaving && document.readyState === 'complete';"), what)

    def submit(self, button):
        """Clicks a button that sends a form, and waits for the page that answers it."""
        self.click_away(button, f"an answer to {button.text.strip()!r}")

    def follow(self, link):
        self.click_away(link, f"the page {link.text.strip()!r} leads to")

    def button(self, text, scope=None):
        root = scope or self.driver
        for b in root.find_elements(By.TAG_NAME, "button"):
            if b.text.strip() == text and b.is_displayed():
                return b
        raise Failed(f"no button {text!r} on {self.path()}")

    def link(self, text, scope=None):
        root = scope or self.driver.find_element(By.TAG_NAME, "main")
        for a in root.find_elements(By.TAG_NAME, "a"):
            if a.text.strip() == text and a.is_displayed():
                return a
        raise Failed(f"no link {text!r} on {self.path()}")

    def nav(self, label):
        self.follow(self.link(label, self.driver.find_element(By.CSS_SELECTOR, "nav.nav")))

    def form(self, action):
        found = self.driver.find_elements(By.CSS_SELECTOR, f"form[action='{action}']")
        if not found:
            raise Failed(f"no form that sends to {action} on {self.path()}")
        return found[0]

    @staticmethod
    def fill(form, values):
        """Fills fields by name: text and textareas are typed, selects chosen by value, a
        checkbox ticked for True and cleared for False."""
        for name, value in values.items():
            field = form.find_element(By.NAME, name)
            if field.tag_name == "select":
                Select(field).select_by_value(value)
            elif field.get_attribute("type") == "checkbox":
                if field.is_selected() != value:
                    field.click()
            else:
                field.clear()
                if value:
                    field.send_keys(value)

    def error_summary(self):
        found = self.driver.find_elements(By.CSS_SELECTOR, ".error-summary[role=alert]")
        return found[0].text.strip() if found and found[0].is_displayed() else None

    # --- what every page is checked for

    def defect(self, key, what, label):
        entry = self.defects.setdefault(key, [what, []])
        if label not in entry[1]:
            entry[1].append(label)

    def screenshot(self, label, width):
        self.shots += 1
        name = os.path.join(SCREENSHOTS, f"{self.shots:02d}-{label}-{width}.png")
        try:
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": max(width, size["width"]),
                         "height": min(size["height"], 10000), "scale": 1}})
            with open(name, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        except WebDriverException:
            self.driver.save_screenshot(name)

    def width(self, width):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def page(self, label):
        """Checks the page the browser shows: a screenshot at each width, no horizontal
        scrollbar, and axe-core's WCAG rules (console pages and the sign-in chooser)."""
        self.loaded()
        console = self.path().startswith("/console")
        for width in WIDTHS:
            self.width(width)
            time.sleep(0.1)
            if console:
                scroll, inner = self.driver.execute_script(
                    "return [document.documentElement.scrollWidth, window.innerWidth];")
                if scroll > inner:
                    wide = self.driver.execute_script(TOO_WIDE)
                    self.defect(("scroll", width, self.heading()),
                                f"horizontal scrollbar at {width} px: the page is {scroll} px wide; "
                                f"wider than the window: {', '.join(wide) or 'none found'}", label)
            self.screenshot(label, width)
        self.width(WIDTHS[0])
        if console:
            self.forms(label)
            self.pages += 1
        # The dev identity provider's chooser is a page staff click through too.
        if console or self.path().startswith("/dev-idp/"):
            self.accessibility(label)

    def forms(self, label):
        """Every form that changes something carries the session's CSRF token, and every form in
        the page's body its own request id."""
        for form in self.driver.find_elements(By.CSS_SELECTOR, "form[method=post]"):
            action = form.get_attribute("action")
            names = [i.get_attribute("name") for i in form.find_elements(By.CSS_SELECTOR, "input[type=hidden]")]
            missing = [n for n in ("csrf", "request") if n not in names
                       and not (n == "request" and urlparse(action).path == "/console/sign-out")]
            if missing:
                path = urlparse(action).path
                self.defect(("form", path, ",".join(missing)),
                            f"the form that posts to {path} has no hidden {' or '.join(missing)} field", label)

    def accessibility(self, label):
        if not self.driver.execute_script("return typeof window.axe === 'object';"):
            self.driver.execute_script(self.axe)
        result = self.driver.execute_async_script(AXE_RUN, AXE_TAGS)
        if result.get("error"):
            raise Failed(f"axe-core did not run on {self.path()}: {result['error']}")
        for v in result["violations"]:
            for node in v["nodes"]:
                key = ("axe", v["id"], node["target"])
                what = (f"[{v['impact']}] {v['id']}: {v['help']}\n      at {node['target']}: {node['html']}"
                        f"\n      {node['why']}")
                if v["impact"] in BLOCKING:
                    self.defect(key, what, label)
                else:
                    entry = self.notes.setdefault(key, [what, []])
                    if label not in entry[1]:
                        entry[1].append(label)


# --- the steps


def sign_in(c, persona, name, label):
    """Signs in from the console's own page, choosing the persona on the identity provider."""
    d = c.driver
    c.open("/console/")
    c.expect_heading("Sign in to the practice console")
    c.page(f"{label}-sign-in")
    sign_in_link = wait_for(d, EC.element_to_be_clickable((By.CSS_SELECTOR, "main a[href='/console/sign-in']")),
                            "the Sign in button")
    if sign_in_link.text.strip() != "Sign in":
        raise Failed(f"the sign-in link reads {sign_in_link.text!r}")
    sign_in_link.click()
    choice = wait_for(d, EC.element_to_be_clickable((By.CSS_SELECTOR, f"button[name=login_hint][value='{persona}']")),
                      f"{persona} on the identity provider's page")
    print(f"  {persona}: chose on {d.current_url.split('?')[0]}")
    c.page(f"{label}-identity-provider")

    def home(_):
        return c.path() == "/console/" and c.heading() == "Practice console"
    choice.click()
    wait_for(d, home, f"the console's home page after signing in as {persona}")
    c.loaded()
    if f"Signed in as {name}" not in c.main_text():
        raise Failed(f"the home page does not say who is signed in ({name}): {c.main_text()[:300]!r}")
    header = d.find_element(By.CSS_SELECTOR, "header .who").text
    if name not in header or PRACTICE not in header:
        raise Failed(f"the header shows {header!r}, not {name} at {PRACTICE}")
    print(f"  signed in as {name}; the header shows {header.splitlines()[0]!r}")
    c.page(f"{label}-home")


def open_patient(c, query, name, label):
    """Finds a patient with the search form and opens their page."""
    c.nav("Patients")
    c.expect_heading("Find a patient")
    search = c.form("/console/patients")
    c.fill(search, {"q": query})
    c.submit(c.button("Search", search))
    c.page(f"{label}-search")
    if "found" not in c.main_text():
        raise Failed(f"searching for {query!r} shows no count of patients found")
    c.follow(c.link(name, c.driver.find_element(By.CSS_SELECTOR, "main table")))
    c.expect_heading(name)


REGISTRATION = {
    LUCY[0]: {"method": "documents-in-person", "document": "Passport and council tax bill",
              "verified_by": "", "email": "lucy.evans@example.org", "appointments": "manage",
              "prescriptions": "manage", "record": "summary", "from": ""},
    GRACE[0]: {"method": "vouching-with-record-confirmation", "document": "", "verified_by": "Dr Ada Osei",
               "email": "", "appointments": "view", "prescriptions": "manage",
               "record": "full", "from": date.today().isoformat()},
}
CONFIRMATIONS = {"responsibilities": True, "coercion": True, "capacity": True}


def register(c, patient, label, refused_first):
    pid, name, query = patient
    me = f"/console/patients/{pid}"
    if c.account(pid) is not None:
        raise Failed(f"{name} already has an online account before registering")
    open_patient(c, query, name, label)
    if "No online account." not in c.main_text():
        raise Failed(f"{name}'s page does not say there is no online account")
    c.page(f"{label}-patient")
    c.follow(c.link("Register for online services"))
    c.expect_heading("Register for online services")
    c.page(f"{label}-register")
    values = dict(REGISTRATION[pid], **CONFIRMATIONS)
    if refused_first:
        c.fill(c.form(f"{me}/register"), dict(values, coercion=False))
        c.submit(c.button("Register and create the account"))
        summary = c.error_summary()
        if not summary or "Confirm you have considered coercion" not in summary:
            raise Failed(f"without the coercion confirmation the page shows no error summary about it: {summary!r}")
        field_error = c.driver.find_elements(By.CSS_SELECTOR, "#coercion-error.field-error")
        if not field_error or "coercion" not in field_error[0].text:
            raise Failed("no error next to the coercion checkbox")
        if c.driver.find_element(By.ID, "coercion").get_attribute("aria-invalid") != "true":
            c.defect(("form", "aria-invalid", "coercion"), "the coercion checkbox is not marked aria-invalid", label)
        focused = c.driver.execute_script(
            "return document.activeElement && document.activeElement.classList.contains('error-summary');")
        if not focused:
            c.defect(("form", "focus", "error-summary"), "the error summary does not take the focus",
                     f"{label}-refused")
        kept = c.form(f"{me}/register")
        method = Select(kept.find_element(By.NAME, "method")).first_selected_option.get_attribute("value")
        if method != values["method"] or not kept.find_element(By.NAME, "capacity").is_selected() \
                or kept.find_element(By.NAME, "document").get_attribute("value") != values["document"]:
            raise Failed("the refused form did not keep what was entered")
        if c.account(pid) is not None:
            raise Failed(f"the refused registration created an account for {name}")
        print(f"  without the coercion confirmation: refused ({summary.splitlines()[-1]!r}); no account")
        c.page(f"{label}-refused")
    c.fill(c.form(f"{me}/register"), values)
    c.submit(c.button("Register and create the account"))
    if c.path() != me:
        raise Failed(f"registering {name} ended on {c.driver.current_url}, not the patient's page: "
                     f"{c.error_summary() or c.main_text()[:500]!r}")
    c.expect_heading(name)
    notice = c.driver.find_elements(By.CSS_SELECTOR, "main .notice[role=status]")
    if not notice or not notice[0].text.startswith("Registered."):
        raise Failed(f"registering {name} shows no notice that it was done")
    account = c.account(pid)
    if account is None:
        raise Failed(f"the console said {name} was registered, but the API has no account")
    status = c.summary("Status")
    print(f"  {name} registered; the page shows the account as {status!r}")
    c.page(f"{label}-registered")
    return account


def letter(c, patient, label):
    pid, name, _ = patient
    c.open(f"/console/patients/{pid}")
    c.expect_heading(name)
    c.follow(c.link("Print the registration letter"))
    # The account is created at the supplier in the background; the letter shows its ids then.
    deadline = time.time() + WAIT
    while True:
        keys = {k: c.summary(k, ".letter") for k in ("Practice ID (ODS code)", "Account ID", "Linkage Key")}
        if c.heading() == "Registration letter" and all(keys.values()):
            break
        if time.time() > deadline:
            raise Failed(f"{name}'s letter does not show its ids: {keys} {c.error_summary() or ''}")
        time.sleep(1)
        c.driver.refresh()
        c.loaded()
    shown = [e.text.strip() for e in c.driver.find_elements(By.CSS_SELECTOR, ".letter .key")]
    if len(shown) != 3:
        raise Failed(f"{name}'s letter has {len(shown)} elements with class key, not 3")
    if keys["Practice ID (ODS code)"] != PRACTICE:
        raise Failed(f"{name}'s letter shows Practice ID {keys['Practice ID (ODS code)']!r}, not {PRACTICE}")
    if f"Dear {name}" not in c.main_text():
        raise Failed(f"{name}'s letter is not addressed to them")
    print(f"  {name}'s letter: Practice ID {keys['Practice ID (ODS code)']}, Account ID {keys['Account ID']}, "
          f"Linkage Key {keys['Linkage Key']}")
    c.page(f"{label}-letter")


def explain(c, patient, label):
    pid, name, _ = patient
    c.open(f"/console/patients/{pid}")
    c.expect_heading(name)
    form = c.form(f"/console/patients/{pid}/explain")
    c.fill(form, {"action": "read-record"})
    c.submit(c.button("Explain", form))
    c.expect_heading("Why this person can or cannot")
    print(f"  Explain: {c.driver.find_element(By.CSS_SELECTOR, 'main .lead').text!r}")
    c.page(f"{label}-explain")


def access_request(proxy, child):
    """A VRS access request from a parent for a child, as NHS England's example has it."""
    with open(FIXTURES, encoding="utf-8") as f:
        body = json.load(f)["mother-child"]
    answers = {"relatedPerson_identifier": proxy, "patient_identifier": child["nhs"],
               "patient_name_first": child["first"], "patient_name_family": child["family"]}

    def walk(items):
        for item in items:
            if item.get("linkId") in answers:
                item["answer"] = [{"valueString": answers[item["linkId"]]}]
            if item.get("linkId") == "patient_birthDate":
                item["answer"] = [{"valueDate": child["born"]}]
            walk(item.get("item", []))
    walk(body["item"])
    body["source"]["identifier"]["value"] = proxy
    body["subject"]["identifier"]["value"] = child["nhs"]
    body["authored"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return body


def request_proxy_access(c, proxy):
    """The proxy submits a request through the API, as the NHS App would for them."""
    r = requests.post(f"{c.base}/QuestionnaireResponse", timeout=WAIT,
                      data=json.dumps(access_request(proxy, CHILD)),
                      headers={"Authorization": f"Bearer {c.gw.person(proxy)}",
                               "Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                               "X-Request-ID": str(uuid.uuid4())})
    if r.status_code not in (200, 201):
        raise Failed(f"the access request from {proxy} for {CHILD['nhs']} was answered {r.status_code}: {r.text[:800]}")
    roles = c.api("GET", f"/Consent?patient:identifier={CHILD['nhs']}&status=proposed",
                  c.token("staff-emis"), expect=(200,)).json()
    for e in roles.get("entry", []):
        role = e.get("resource", {})
        if role.get("resourceType") == "Consent" and \
                any(p.get("identifier", {}).get("value") == proxy for p in role.get("performer", [])):
            return role["id"]
    raise Failed(f"the access request from {proxy} made no proposed role for {CHILD['nhs']}: {json.dumps(roles)[:800]}")


def open_request(c, role, label):
    c.nav("Proxy roles")
    c.expect_heading("Proxy roles")
    table = wait_for(c.driver, lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, "main table")
                                               if "Requests waiting for a decision" in t.text), False),
                     "the table of requests waiting for a decision")
    links = [a for a in table.find_elements(By.TAG_NAME, "a")
             if urlparse(a.get_attribute("href")).path == f"/console/proxies/{role}"]
    if not links or links[0].text.strip() != "Review the request":
        raise Failed(f"the request {role} is not among those waiting for a decision")
    c.page(f"{label}-waiting")
    c.follow(links[0])
    c.expect_heading("Proxy role")
    if c.summary("Status") != "proposed":
        raise Failed(f"the role {role} shows status {c.summary('Status')!r}, not proposed")
    if c.summary("Patient (NHS number)") != "999 000 0026":
        raise Failed(f"the role {role} is not about Oliver Smith: {c.summary('Patient (NHS number)')!r}")


def decided(c, role, status, notice, label):
    shown = c.driver.find_elements(By.CSS_SELECTOR, "main .notice[role=status]")
    if not shown or notice not in shown[0].text:
        raise Failed(f"the role {role}: no notice {notice!r}: {c.error_summary() or c.main_text()[:500]!r}")
    c.open(f"/console/proxies/{role}")
    c.expect_heading("Proxy role")
    if c.summary("Status") != status:
        raise Failed(f"the role {role} shows status {c.summary('Status')!r} on its page, not {status}")
    if c.role_status(role) != status:
        raise Failed(f"the role {role} is {c.role_status(role)!r} in the API, not {status}")
    print(f"  role {role}: {status} on its page and in the API ({c.summary('Reason')!r})")
    c.page(f"{label}-{status}")


def proxies(c):
    approve = request_proxy_access(c, PARENT)
    refuse = request_proxy_access(c, STRANGER)
    print(f"  requests sent through the API: {PARENT} -> role {approve}, {STRANGER} -> role {refuse}")

    open_request(c, approve, "parent")
    main = c.main_text()
    if "The patient is a child (" not in main:
        raise Failed("the role page does not say the patient is a child")
    c.page("parent-request")
    form = c.form(f"/console/proxies/{approve}/approve")
    # Without the child's view, a 12-year-old's role is not approved.
    c.fill(form, {"basis": "parental-responsibility", "safeguarding": True})
    c.submit(c.button("Approve the request"))
    summary = c.error_summary()
    if not summary or "child" not in summary:
        raise Failed(f"approving without the child's view shows no error about it: {summary!r}")
    if c.role_status(approve) != "proposed":
        raise Failed("a refused approval changed the role")
    c.page("parent-no-child-view")
    form = c.form(f"/console/proxies/{approve}/approve")
    c.fill(form, {"basis": "parental-responsibility", "child_consent": "given", "safeguarding": True})
    c.submit(c.button("Approve the request"))
    decided(c, approve, "active", "The request was approved", "parent")

    open_request(c, refuse, "stranger")
    c.page("stranger-request")
    form = c.form(f"/console/proxies/{refuse}/refuse")
    c.fill(form, {"reason": "APPLICATION_REJECTED_NO_LEGAL_BASIS",
                  "reason_text": "No evidence of parental responsibility for the child"})
    c.submit(c.button("Refuse the request"))
    decided(c, refuse, "rejected", "The request was refused", "stranger")

    c.nav("Proxy roles")
    still = [r for r in (approve, refuse)
             if c.driver.find_elements(By.CSS_SELECTOR, f"main a[href='/console/proxies/{r}']")]
    if still:
        raise Failed(f"decided requests are still listed as waiting: {still}")
    search = c.form("/console/proxies")
    c.fill(search, {"nhs": CHILD["nhs"]})
    c.submit(c.button("Find", search))
    if "Roles as the patient" not in c.main_text():
        raise Failed(f"finding the roles of {CHILD['nhs']} shows no roles as the patient: {c.main_text()[:300]!r}")
    c.page("proxies-search")

    c.nav("Tasks and reviews")
    c.page("tasks")


def opt_in(c):
    c.nav("Access model")
    c.expect_heading("Access model")
    model = c.summary("Record access model")
    if model != "opt-out":
        raise Failed(f"{PRACTICE} shows the model {model!r} before the move, not opt-out")
    c.page("opt-in-before")
    form = c.form("/console/opt-in")
    c.fill(form, {"days": "30", "confirm": True})
    c.submit(c.button("Start the move"))
    if c.error_summary():
        raise Failed(f"starting the move was refused: {c.error_summary()!r}")
    c.expect_heading("Access model")
    if not c.driver.find_elements(By.CSS_SELECTOR, "progress#opt-in-progress"):
        raise Failed("the page shows no progress bar for the move")
    texts = []
    running_checked = False

    def finished(d):
        found = d.find_elements(By.CSS_SELECTOR, "main [data-progress-text]")
        text = found[0].text.strip() if found else ""
        if text and (not texts or texts[-1] != text):
            texts.append(text)
        return text.startswith("Finished:") and d.execute_script("return document.readyState") == "complete"
    if not finished(c.driver) and c.driver.find_elements(By.CSS_SELECTOR, "[data-progress-url]"):
        c.page("opt-in-running")
        running_checked = True
    wait_for(c.driver, finished, "the page to show the move finished", timeout=JOB_WAIT)
    c.loaded()
    if not c.driver.find_elements(By.CSS_SELECTOR, "progress#opt-in-progress"):
        raise Failed("the finished move shows no progress bar")
    model = c.summary("Record access model")
    if model != "opt-in":
        raise Failed(f"after the move the page shows the model {model!r}, not opt-in")
    if c.driver.find_elements(By.CSS_SELECTOR, "form[action='/console/opt-in']"):
        raise Failed("after the move the page still offers to start it")
    print(f"  {' -> '.join(texts)}")
    late = "" if running_checked else " (the move had finished before the page showed it running)"
    print(f"  model now {model}{late}")
    c.page("opt-in-finished")


def form_body(csrf, request=None):
    """The registration form for Daniel Jones, complete, as a browser would send it."""
    fields = [("request", request or str(uuid.uuid4())), ("method", "documents-in-person"),
              ("document", "Passport"), ("verified_by", ""), ("email", ""), ("responsibilities", "yes"),
              ("coercion", "yes"), ("capacity", "yes"), ("appointments", "manage"),
              ("prescriptions", "manage"), ("record", "summary"), ("from", "")]
    return fields if csrf is None else [("csrf", csrf)] + fields


def forged(c, cookie, fields, origin, expect, says, what, extra=None):
    pid = DANIEL[0]
    headers = {"Cookie": f"gp-console={cookie}"}
    if origin:
        headers["Origin"] = origin
    headers.update(extra or {})
    r = requests.post(f"{c.base}/console/patients/{pid}/register", data=fields, headers=headers,
                      allow_redirects=False, timeout=WAIT)
    if r.status_code != expect:
        raise Failed(f"{what}: answered {r.status_code}, not {expect}: {r.text[:500]}")
    if says not in r.text:
        raise Failed(f"{what}: the page does not say {says!r}")
    if c.account(pid) is not None:
        raise Failed(f"{what}: {DANIEL[1]} now has an online account")
    print(f"  {what}: {r.status_code}, nothing changed")


def forged_forms(c):
    """Posts made outside the browser with its session cookie, each refused."""
    d = c.driver
    cookie = next((k["value"] for k in d.get_cookies() if k["name"] == "gp-console"), None)
    if not cookie:
        raise Failed(f"the browser holds no gp-console cookie: {[k['name'] for k in d.get_cookies()]}")
    c.open(f"/console/patients/{DANIEL[0]}/register")
    c.expect_heading("Register for online services")
    c.page("forged-form-source")
    form = c.form(f"/console/patients/{DANIEL[0]}/register")
    csrf = form.find_element(By.NAME, "csrf").get_attribute("value")
    if not csrf:
        raise Failed("the registration form carries no csrf value")
    if c.account(DANIEL[0]) is not None:
        raise Failed(f"{DANIEL[1]} has an online account already")
    refused = "could not be accepted"
    forged(c, cookie, form_body(None), c.base, 403, refused, "without the csrf field")
    forged(c, cookie, form_body("x" + csrf[1:]), c.base, 403, refused, "with another csrf value")
    forged(c, cookie, form_body(csrf), "http://evil.example", 403, "from another site",
           "with Origin http://evil.example")
    forged(c, cookie, form_body(csrf), None, 403, "from another site", "with Referer http://evil.example/",
           {"Referer": "http://evil.example/"})
    forged(c, cookie, form_body(csrf), c.base, 403, "from another site", "with Sec-Fetch-Site cross-site",
           {"Sec-Fetch-Site": "cross-site"})
    return cookie, csrf


def audit_page(c):
    c.nav("Audit trail")
    c.expect_heading("Audit trail")
    form = c.form("/console/audit")
    c.fill(form, {"outcome": "4"})
    c.submit(c.button("Search", form))
    rows = [r.text for r in c.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")]
    if not any("console-form" in r for r in rows):
        raise Failed(f"the audit trail page lists no refused console-form event: {rows[:5]}")
    print(f"  audit trail page: {sum('console-form' in r for r in rows)} refused console forms listed")
    c.page("audit-refused")


def sign_out(c, label):
    d = c.driver
    c.submit(c.button("Sign out", d.find_element(By.CSS_SELECTOR, "header")))
    c.expect_heading("Sign in to the practice console")
    if "You have signed out." not in c.main_text():
        raise Failed("signing out does not say so")
    if any(k["name"] == "gp-console" for k in d.get_cookies()):
        raise Failed("the browser still holds the gp-console cookie after signing out")
    c.page(f"{label}-signed-out")
    c.open("/console/patients")
    c.expect_heading("Sign in to the practice console")
    if not d.find_elements(By.CSS_SELECTOR, "main a[href='/console/sign-in']"):
        raise Failed("after signing out, /console/patients shows no Sign in button")
    print(f"  signed out; /console/patients now shows {c.heading()!r}")
    c.page(f"{label}-patients-after-sign-out")


def audit_trail(c):
    r = c.api("GET", "/AuditEvent?_count=100", c.token("clinician-emis"), expect=(200,))
    events = [e["resource"] for e in r.json().get("entry", [])]
    refused = [e for e in events if e.get("outcome") == "4"
               and any(s.get("code") == "console-form" for s in e.get("subtype", []))]
    if not refused:
        raise Failed(f"GET /AuditEvent?_count=100 as clinician-emis holds no console-form event with outcome 4 "
                     f"(of {len(events)} events)")
    why = " | ".join(sorted({(e.get("outcomeDesc") or "").split(" (")[0] for e in refused}))
    for expected in ("CSRF token", "another site"):
        if expected not in why:
            raise Failed(f"the refused console forms on the audit trail do not include one for {expected!r}: {why}")
    print(f"  GET /AuditEvent as clinician-emis: {len(refused)} refused console forms ({why})")


def reception(c):
    open_patient(c, DANIEL[2], DANIEL[1], "reception")
    c.page("reception-patient")
    c.follow(c.link("Register for online services"))
    c.expect_heading("Register for online services")
    c.fill(c.form(f"/console/patients/{DANIEL[0]}/register"),
           dict(method="documents-in-person", document="Passport", **CONFIRMATIONS))
    c.submit(c.button("Register and create the account"))
    summary = c.error_summary()
    if not summary or "Your role does not allow this" not in summary:
        raise Failed(f"the receptionist's registration shows no refusal in plain words: "
                     f"{summary or c.main_text()[:400]!r}")
    if c.account(DANIEL[0]) is not None:
        raise Failed(f"the receptionist's refused registration created an account for {DANIEL[1]}")
    print(f"  refused: {summary.splitlines()[-1]!r}; {DANIEL[1]} still has no account")
    c.page("reception-refused")


def run(gw):
    driver = browser(WIDTHS[0], HEIGHT, WAIT, "--hide-scrollbars")
    c = Console(driver, gw)
    try:
        c.width(WIDTHS[0])
        c.begin("1. staff-emis signs in by choosing themselves at the identity provider")
        sign_in(c, "staff-emis", "Sam Patel", "staff")

        c.begin("2. registers Lucy Evans (first without the coercion confirmation) and Grace Okafor, "
                "prints the letters")
        register(c, LUCY, "lucy", refused_first=True)
        register(c, GRACE, "grace", refused_first=False)
        letter(c, LUCY, "lucy")
        letter(c, GRACE, "grace")
        explain(c, LUCY, "lucy")

        c.begin("3. approves a parent for a 12-year-old and refuses another request")
        proxies(c)

        c.begin(f"4. moves {PRACTICE} to opt-in and follows the move")
        opt_in(c)

        c.begin("5. forged forms with the live session's cookie are refused and change nothing")
        cookie, csrf = forged_forms(c)
        audit_page(c)

        c.begin("6. signs out: the old cookie is worth nothing; the refusals are on the audit trail")
        sign_out(c, "staff")
        forged(c, cookie, form_body(csrf), c.base, 401, "Your session has ended", "with the signed-out cookie")
        audit_trail(c)

        c.begin("7. reception-emis may only look: registering is refused in plain words")
        sign_in(c, "reception-emis", "Chris Lee", "reception")
        reception(c)
        sign_out(c, "reception")
    except (Failed, WebDriverException, requests.RequestException) as error:
        message = error.msg if isinstance(error, WebDriverException) else str(error)
        here = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == __file__]
        where = ""
        if here and not isinstance(error, Failed):
            where = f" (console_ui.py line {here[-1].lineno}, in {here[-1].name})"
        print(f"FAIL {c.step}: {message}{where}")
        try:
            c.screenshot("failure", WIDTHS[0])
            print(f"  at {driver.current_url}; screenshot {c.shots:02d}-failure-{WIDTHS[0]}.png")
        except WebDriverException:
            pass
        return 1
    finally:
        driver.quit()
    print(f"{c.pages} console pages checked at {' and '.join(f'{w} px' for w in WIDTHS)}; "
          f"screenshots in {SCREENSHOTS}")
    for (kind, rule, target), (what, labels) in sorted(c.notes.items()):
        print(f"note (moderate or minor, not failing): {what}\n      on {', '.join(labels)}")
    if c.defects:
        print(f"FAIL {len(c.defects)} page defects:")
        for (kind, rule, target), (what, labels) in c.defects.items():
            print(f"  {what}\n      on {', '.join(labels)}")
        return 1
    return 0


def main():
    if not os.path.isfile(AXE):
        print(f"{AXE} is missing: npm install --prefix .ci axe-core@4.10")
        return 1
    os.makedirs(SCREENSHOTS, exist_ok=True)
    for old in glob.glob(os.path.join(SCREENSHOTS, "[0-9][0-9]-*.png")):
        os.remove(old)
    return run_bounded("/console/", run, DEADLINE, "the console did all it was asked")


if __name__ == "__main__":
    sys.exit(main())
