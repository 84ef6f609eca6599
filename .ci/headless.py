"""What the CI scripts that drive headless Chromium share: the browser, the failure they raise,
and a bounded run against a fresh dev-profile gateway.

    from headless import Failed, browser, run_bounded
    sys.exit(run_bounded("/docs/", run, deadline=300, done="every persona signed in"))
"""
import os
import signal
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from devgateway import DevGateway, GatewayDidNotStart

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


class Failed(Exception):
    pass


def browser(width, height, wait, *extra):
    """Debian's Chromium, headless, with every page load and script bounded by `wait` seconds."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions", *extra):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(wait)
    driver.set_script_timeout(wait)
    return driver


def run_bounded(path, run, deadline, done):
    """Starts the dev profile, calls `run(gateway)` and answers its exit code; every wait in it
    is bounded, and `deadline` bounds the whole, whatever hangs."""
    started = time.time()

    def out_of_time(*_):
        raise Failed(f"no result within {deadline} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(deadline)
    try:
        with DevGateway() as gateway:
            print(f"$ chromium (headless) {gateway.base}{path}")
            code = run(gateway)
    except GatewayDidNotStart as error:
        print(error)
        return 1
    except Failed as error:
        print(f"FAIL {error}")
        return 1
    finally:
        signal.alarm(0)
    print(f"{done if code == 0 else 'failed'} in {time.time() - started:.0f} s")
    return code
