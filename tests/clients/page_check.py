"""The cohort builder in a real headless Chromium, driven by Selenium as a user would.

usage: page_check.py BASE_URL OUT_DIR SCREENSHOT_DIR

Loads the page, sets a cohort by clicking and typing (datasets nih, chexpert and
padchest of the four; Effusion with, Pneumothorax without; F; age 40..60; PA), waits for the
counts, reads every count and prevalence cell off the page, takes screenshots at
1280x800, follows the permalink in a fresh page load and reads the form back,
downloads the manifest (Parquet and CSV) and the saved query from the page's own
links, and opens a patient's timeline. Prints one JSON object with what it read;
the Rust test compares it with `cxr cohort --summary` and `cxr export`.
"""

import json
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, OUT, SHOTS = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
EXPECTED_QUERY = (
    "dataset=chexpert%2Cnih%2Cpadchest&with=Effusion&without=Pneumothorax"
    "&age=40..60&sex=F&view=PA"
)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--disable-gpu"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_ready(driver, query=None, timeout=120):
    def ready(d):
        body = d.find_element(By.TAG_NAME, "body")
        state = body.get_attribute("data-state")
        if state == "error":
            raise AssertionError("the page shows an error: " + d.find_element(By.ID, "error").text)
        return state == "ready" and (query is None or body.get_attribute("data-query") == query)
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(ready)
    except TimeoutException:
        shown = driver.find_element(By.TAG_NAME, "body").get_attribute("data-query")
        raise AssertionError(f"waited for the answer to {query!r}; the page shows {shown!r}")


def read_counts(driver):
    counts = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#counts tbody tr[data-dataset]"):
        cells = {td.get_attribute("data-measure"): td.text.replace(",", "")
                 for td in row.find_elements(By.TAG_NAME, "td")}
        counts[row.get_attribute("data-dataset")] = cells
    return counts


def read_prevalence(driver):
    return [
        {"dataset": td.get_attribute("data-dataset"), "finding": td.get_attribute("data-finding"),
         "n": td.get_attribute("data-n"), "denominator": td.get_attribute("data-denominator")}
        for td in driver.find_elements(By.CSS_SELECTOR, "#prevalence td[data-finding]")
    ]


def form_state(driver):
    checked = [c.get_attribute("value") for c in
               driver.find_elements(By.CSS_SELECTOR, "input[name=dataset]") if c.is_selected()]
    value = lambda i: driver.find_element(By.ID, i).get_attribute("value")
    return {
        "datasets": checked,
        "Effusion": value("finding-Effusion"),
        "Pneumothorax": value("finding-Pneumothorax"),
        "sex": value("sex"), "age_min": value("age-min"), "age_max": value("age-max"),
        "view": value("view"),
    }


def download(href, name):
    # The page's own link, fetched as the browser would (same host and port).
    path = OUT / name
    with urllib.request.urlopen(href, timeout=300) as response:
        path.write_bytes(response.read())
        return str(path), response.headers.get("Content-Disposition")


def main():
    driver = browser()
    result = {}
    try:
        driver.get(BASE + "/")
        wait_ready(driver)
        result["all_counts"] = read_counts(driver)
        SHOTS.mkdir(parents=True, exist_ok=True)
        # Set the cohort by clicking: untick every dataset but three.
        for box in driver.find_elements(By.CSS_SELECTOR, "input[name=dataset]"):
            if box.is_selected() != (box.get_attribute("value") in ("nih", "chexpert", "padchest")):
                box.click()
        Select(driver.find_element(By.ID, "finding-Effusion")).select_by_value("with")
        Select(driver.find_element(By.ID, "finding-Pneumothorax")).select_by_value("without")
        Select(driver.find_element(By.ID, "sex")).select_by_value("F")
        driver.find_element(By.ID, "age-min").send_keys("40")
        driver.find_element(By.ID, "age-max").send_keys("60")
        Select(driver.find_element(By.ID, "view")).select_by_value("PA")
        wait_ready(driver, EXPECTED_QUERY)
        result["counts"] = read_counts(driver)
        result["prevalence"] = read_prevalence(driver)
        result["command"] = driver.find_element(By.ID, "command").text
        result["heatmap_cells"] = len(driver.find_elements(By.CSS_SELECTOR, "#heatmap rect"))
        result["age_bars"] = len(driver.find_elements(By.CSS_SELECTOR, "#ages rect"))
        driver.save_screenshot(str(SHOTS / "page-cohort.png"))
        # The heatmap of another dataset, its numbers read from the table under it
        # (opened as a reader would), and kept in the permalink.
        Select(driver.find_element(By.ID, "heatmap-dataset")).select_by_value("padchest")
        driver.find_element(By.CSS_SELECTOR, "#heatmap-numbers summary").click()
        result["heatmap_pairs"] = [
            [c.text.replace(",", "") for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in driver.find_elements(By.CSS_SELECTOR, "#heatmap-numbers tbody tr")]
        # An opened table stays open when the chart is drawn again.
        Select(driver.find_element(By.ID, "heatmap-dataset")).select_by_value("nih")
        result["numbers_kept_open"] = driver.find_element(By.ID, "heatmap-numbers").get_attribute("open") is not None
        Select(driver.find_element(By.ID, "heatmap-dataset")).select_by_value("padchest")
        driver.find_element(By.CSS_SELECTOR, "#ages-numbers summary").click()
        result["age_numbers"] = [
            [c.text.replace(",", "") for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in driver.find_elements(By.CSS_SELECTOR, "#ages-numbers tbody tr")]
        # Keyboard: Tab reaches the form's controls in order, each with a label.
        unlabelled = driver.execute_script(
            "return [...document.querySelectorAll('input, select')].filter(e => !e.labels || !e.labels.length).map(e => e.id || e.name)")
        result["unlabelled_controls"] = unlabelled
        # A patient's timeline on click.
        patient = driver.find_element(By.CSS_SELECTOR, "#patients button")
        result["patient"] = [patient.get_attribute("data-dataset"), patient.get_attribute("data-patient")]
        patient.click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline tbody tr"))
        result["timeline_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#timeline tbody tr"))
        driver.execute_script("document.getElementById('timeline').scrollIntoView()")
        driver.save_screenshot(str(SHOTS / "page-timeline.png"))
        # The downloads, from the page's own links.
        links = {i: driver.find_element(By.ID, i).get_attribute("href")
                 for i in ["manifest-parquet", "manifest-csv", "saved-query", "permalink"]}
        result["links"] = links
        result["manifest_parquet"], result["parquet_disposition"] = download(links["manifest-parquet"], "page.parquet")
        result["manifest_csv"], _ = download(links["manifest-csv"], "page.csv")
        result["saved_query"], _ = download(links["saved-query"], "page.sql")
        # The permalink restores the form and the counts in a fresh load.
        driver.get("about:blank")
        driver.get(links["permalink"])
        wait_ready(driver, EXPECTED_QUERY)
        result["restored_form"] = form_state(driver)
        result["restored_heatmap"] = driver.find_element(By.ID, "heatmap-dataset").get_attribute("value")
        result["restored_counts"] = read_counts(driver)
        # A hand-written link is read as the API reads it (names without regard to
        # case, a repeated dataset), and a name the page does not know is said.
        driver.get(BASE + "/?dataset=NIH&dataset=chexpert&sex=f&with=effusion&view=pa")
        wait_ready(driver, "dataset=chexpert%2Cnih&with=Effusion&sex=F&view=PA")
        result["hand_written_form"] = form_state(driver)
        # A switch written as the API takes it (`=1`) is set, not dropped.
        driver.get(BASE + "/?dataset=nih&first-study=1")
        wait_ready(driver, "dataset=nih&first-study=true")
        result["first_study_checked"] = driver.find_element(By.NAME, "first-study").is_selected()
        driver.get(BASE + "/?dataset=nih&widthout=Effusion")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
        result["misspelt_text"] = driver.find_element(By.ID, "error").text
        driver.get(BASE + "/?dataset=nosuch")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
        result["unknown_text"] = driver.find_element(By.ID, "error").text
        result["downloads_off"] = driver.find_element(By.ID, "manifest-parquet").get_attribute("aria-disabled")
        # Off means no address: Enter on the link downloads nothing.
        result["downloads_off_href"] = driver.find_element(By.ID, "manifest-csv").get_attribute("href")
        # The words the API takes are taken by the page too.
        driver.get(BASE + "/?dataset=nih&sex=female&uncertain=nan&view=frontal")
        wait_ready(driver)
        result["aliases"] = [driver.find_element(By.ID, name).get_attribute("value") for name in ["sex", "uncertain", "view"]]
        # An error after a counted cohort leaves none of that cohort's numbers beside it.
        for field, value in [("age-min", "60"), ("age-max", "40")]:
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
        result["numbers_beside_error"] = len(driver.find_elements(
            By.CSS_SELECTOR, "#counts tbody tr, #prevalence tbody tr, #heatmap rect, #patients li"))
        # `+5` and an empty finding are read as the API reads them: 5, and not given.
        driver.get(BASE + "/?dataset=nih&min-studies=%2B5&with=")
        wait_ready(driver, "dataset=nih&min-studies=5")
        result["plus_min_studies"] = read_counts(driver)
        # Values the API refuses are said too, not read as another cohort.
        result["refused_values"] = {}
        for query in ["age=40", "age=abc", "min-studies=abc", "sex=F&sex=M", "with=Effusion&without=Effusion"]:
            driver.get(BASE + "/?dataset=nih&" + query)
            WebDriverWait(driver, 60).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
            result["refused_values"][query] = driver.find_element(By.ID, "error").text
        # The address keeps what was refused, so a reload says it again.
        result["refused_address"] = driver.current_url
        # A bad cohort is said in the page, not a blank.
        driver.get(BASE + "/?age=60..40")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
        result["error_text"] = driver.find_element(By.ID, "error").text
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
