"""A browser polling the console's overview every 5 s, for the request-path benchmark with
the console in use (bench/run_console.sh): Debian's chromium driven by Playwright, signed in
with the admin key, reloading ``/ui/?range=24h`` until killed. Prints one line per load
(seconds it took) so the run's log shows the page kept answering under load.

    python bench/console_poller.py URL ADMIN_KEY [INTERVAL_S]
"""

from __future__ import annotations

import sys
import time

from playwright.sync_api import sync_playwright


def main() -> None:
    url, admin_key = sys.argv[1].rstrip("/"), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/ui/")
        page.fill("input[name=key]", admin_key)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        while True:
            began = time.perf_counter()
            page.goto(f"{url}/ui/?range=24h&by=model")
            took = time.perf_counter() - began
            print(f"overview {took * 1000:.0f} ms", flush=True)
            time.sleep(max(0.0, interval - took))


if __name__ == "__main__":
    main()
