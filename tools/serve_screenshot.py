"""Screenshot the serve page after it classified an image (for docs/).

Start a server first, then point this at it:

    lenet-keras serve --export-dir exports/my-run --port 8000 &
    python tools/serve_screenshot.py http://127.0.0.1:8000/ photo.png docs/serve.png
    python tools/serve_screenshot.py http://127.0.0.1:8000/ photo.png docs/serve-phone.png --phone

Needs Debian's `chromium` and `chromium-driver` and `pip install selenium`; prints the
verdict the page showed.
"""

import argparse
import shutil
import sys
from pathlib import Path

PHONE = {"width": 390, "height": 844, "pixelRatio": 2.0, "touch": True}


def screenshot(url, image, out, phone=False, window="900,1000"):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={window}", "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    browser = webdriver.Chrome(options=options,
                               service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(str(Path(image).resolve()))
        wait.until(lambda b: b.find_element(By.ID, "verdict").get_attribute("data-state")
                   not in ("idle", "busy"))
        browser.save_screenshot(str(out))
        return browser.find_element(By.ID, "verdict").text
    finally:
        browser.quit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("image")
    parser.add_argument("out")
    parser.add_argument("--phone", action="store_true", help="390x844 phone screen, touch")
    parser.add_argument("--window", default="900,1000", help="desktop window W,H")
    args = parser.parse_args(argv)
    print(screenshot(args.url, args.image, args.out, args.phone, args.window))


if __name__ == "__main__":
    sys.exit(main())
