"""Drives verdict-sync's page in headless Chromium (Debian's, through chromedriver) the way a
person would: log in, drop a clean file, a zip holding EICAR three levels deep, and a file over
the size limit, checking what the page shows and saving a screenshot of each state.

    page_test.py BASE_URL USER PASSWORD CLEAN_FILE NESTED_ZIP BIG_FILE DEEP_ZIP OUT_DIR

DEEP_ZIP holds EICAR under a member name of 1,500 folders: the page must draw it, and still
work after a reload.

Run by the api-sync integration test `page::*`; exits non-zero with the reason on failure.
"""
import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, user, password, clean, nested, big, deep, out = sys.argv[1:9]
os.makedirs(out, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("VERDICT_TEST_CHROMIUM", "/usr/bin/chromium")
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--window-size=1100,1400",
             "--user-data-dir=" + tempfile.mkdtemp(prefix="verdict-chromium-")):
    options.add_argument(flag)
service = Service(os.environ.get("VERDICT_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
driver = webdriver.Chrome(service=service, options=options)
wait = WebDriverWait(driver, 30)


def shot(name):
    path = os.path.join(out, name + ".png")
    driver.save_screenshot(path)
    print("screenshot", path)


def check(condition, why):
    if not condition:
        shot("failure")
        raise SystemExit("page test failed: " + why)


def drop(path):
    """What dropping a file does: the page's file input receives it."""
    chooser = driver.find_element(By.ID, "files")
    driver.execute_script("arguments[0].hidden = false;", chooser)
    chooser.send_keys(path)
    driver.execute_script("arguments[0].hidden = true;", chooser)


try:
    driver.get(base + "/")
    check("Verdict" in driver.title, "title: " + driver.title)
    shot("1-login")
    # A wrong password first: the page says so and stays on the login form.
    driver.find_element(By.ID, "username").clear()
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys("not the password")
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "login-message"), "Wrong user name or password"))
    driver.find_element(By.ID, "password").clear()
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "scan-panel")))
    shot("2-logged-in")

    drop(clean)
    clean_row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'li.result[data-result="Clean"]')))
    check(os.path.basename(clean) in clean_row.text, "clean row: " + clean_row.text)
    check("SHA-256" in clean_row.text and "Objects examined" in clean_row.text, "facts: " + clean_row.text)
    shot("3-clean")

    drop(nested)
    infected = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'li.result[data-result="Infected"]')))
    names = [e.text for e in infected.find_elements(By.CSS_SELECTOR, ".node-name")]
    for member in (os.path.basename(nested), "level2.zip", "level3.zip", "eicar.com"):
        check(member in names, "tree rows %r lack %s" % (names, member))
    finding = infected.find_element(By.CSS_SELECTOR, ".finding")
    check("Found:" in finding.text and "(" in finding.text, "detection: " + finding.text)
    # The detection sits on the innermost member's row, three levels down.
    depth = driver.execute_script(
        "let n = arguments[0].closest('li'), d = 0;"
        "while (n) { n = n.parentElement.closest('li[role=treeitem]'); d++; } return d;",
        finding)
    check(depth == 4, "the detection is %d rows deep, not under eicar.com" % depth)
    shot("4-infected-tree")

    drop(big)
    wait.until(EC.text_to_be_present_in_element((By.ID, "scan-message"), "Too large"))
    refused = driver.find_element(By.CSS_SELECTOR, "li.result .message.error")
    check("limit" in refused.text, "413 message: " + refused.text)
    shot("5-too-large")

    # A member 1,500 folders deep: drawn, with the rows nested no deeper than the page's cap.
    drop(deep)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, 'li.result[data-result="Infected"]')) == 2)
    newest = driver.find_elements(By.CSS_SELECTOR, 'li.result[data-result="Infected"]')[0]
    check(os.path.basename(deep) in newest.text, "deep row: " + newest.text[:200])
    deep_finding = newest.find_element(By.CSS_SELECTOR, ".finding")
    rows_deep = driver.execute_script(
        "let n = arguments[0].closest('li'), d = 0;"
        "while (n) { n = n.parentElement.closest('li[role=treeitem]'); d++; } return d;",
        deep_finding)
    check(rows_deep <= 40, "the deep member is drawn %d rows deep" % rows_deep)
    check("eicar.com" in newest.text, "the deep member's path is shown")
    shot("6-deep-tree")

    # The session's history survives a reload, the deep result included.
    driver.refresh()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'li.result[data-result="Infected"]')))
    check(len(driver.find_elements(By.CSS_SELECTOR, "li.result[data-result]")) == 3, "history after reload")
    check(driver.find_element(By.ID, "scan-panel").is_displayed(), "the page works after a reload")
    shot("7-after-reload")
    print("page test passed")
finally:
    driver.quit()
