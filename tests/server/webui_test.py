#!/usr/bin/env python3
"""The chat page at `/` in a real browser: headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) loads the page from a running `awq serve`, sends a message, and the test checks
that a streamed assistant reply appears, that the page shows the model name and a tokens/s figure,
and that no error message is shown. A screenshot goes to $OUT_DIR (default out/)/webui.png.

Usage: webui_test.py AWQ_BINARY MODEL_DIR      (exit 0 = passed; 77 = skipped: no browser)
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    awq, model = sys.argv[1], sys.argv[2]
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        driver = None
    if not chromium or not driver:
        print("SKIP: needs chromium, chromium-driver and the selenium package")
        return 77
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="awq-serve-webui-", suffix=".log", delete=False)
    proc = subprocess.Popen([awq, "serve", model, "--port", str(port), "--parallel", "4",
                             "--ctx", "1024", "--served-model-name", "webui-test-model"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    browser = None
    try:
        for _ in range(240):  # up to 120 s for the model to load
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}; log: {log.name}")
            try:
                if urllib.request.urlopen(base + "/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("server did not become healthy")
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1000,800"):
            opts.add_argument(a)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)
        browser.set_page_load_timeout(60)
        browser.get(base + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_element(By.ID, "model").text == "webui-test-model")
        browser.find_element(By.ID, "temperature").clear()
        browser.find_element(By.ID, "temperature").send_keys("0")
        browser.find_element(By.ID, "max_tokens").clear()
        browser.find_element(By.ID, "max_tokens").send_keys("24")
        box = browser.find_element(By.ID, "input")
        box.send_keys("What is the capital of France?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#log .msg[data-done='1']"))
        msgs = browser.find_elements(By.CSS_SELECTOR, "#log .msg")
        roles = [m.get_attribute("data-role") for m in msgs]
        assert roles == ["user", "assistant"], f"messages shown: {roles}"
        reply = msgs[1]
        assert "error" not in reply.get_attribute("class"), f"error shown: {reply.text}"
        text = reply.find_element(By.CSS_SELECTOR, ".text").text.strip()
        assert text, "empty assistant reply"
        stats = reply.find_element(By.CSS_SELECTOR, ".stats").text
        assert "tokens/s" in stats, f"no tokens/s shown: {stats!r}"
        assert "tokens/s" in browser.find_element(By.ID, "speed").text
        out_dir = os.environ.get("OUT_DIR", "out")
        os.makedirs(out_dir, exist_ok=True)
        browser.save_screenshot(os.path.join(out_dir, "webui.png"))
        print(f"webui: reply {text[:60]!r}; {stats}")
        return 0
    finally:
        if browser is not None:
            browser.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
