"""End to end: the playground page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``), driven by Selenium, against the real ``labelwise serve`` and int8 model.

Set ``LABELWISE_PLAYGROUND_SCREENSHOT=<path.png>`` to also write the screenshot there (the README's
``docs/img/playground.png`` is made this way)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LiveServer

pytestmark = [pytest.mark.model, pytest.mark.slow]

REVIEWS = (
    "I love this phone, it works perfectly.",
    "Terrible, it broke after one day.",
    "It does the job, nothing special.",
    "The delivery was late but the product is great.",
    "Not bad at all for the price.",
)
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 120
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)


def skip_loudly(reason: str) -> None:
    """Skip with ``reason``, printed too, so a CI log shows why the browser test did not run."""
    message = f"!!! PLAYGROUND BROWSER TEST SKIPPED: {reason}"
    print(f"\n{message}\n", file=sys.stderr, flush=True)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_loudly("selenium is not installed (it is in labelwise[dev]: pip install -e '.[dev]')")
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        skip_loudly(
            f"no headless browser: {', '.join(missing)} missing "
            "(apt-get install -y chromium chromium-driver; .ci/run installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def type_into(driver: Any, element_id: str, text: str) -> None:
    field = by_id(driver, element_id)
    field.clear()
    field.send_keys(text)


def best_labels(table: Any) -> list[str]:
    """The label whose cell is marked best, per row of a score table."""
    from selenium.webdriver.common.by import By

    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    best = []
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        best.append(next(headers[i] for i, cell in enumerate(cells) if "best" in cell.get_attribute("class")))
    return best


def screenshot(driver: Any, path: Path) -> None:
    """A PNG of the whole page, below the window's fold too (Chromium's DevTools protocol)."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_playground_zero_shot_compare_and_few_shot(
    browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    driver = browser
    # Given the playground served by `labelwise serve`, and the key it printed pasted in
    driver.get(f"{live_server.url}/playground")
    wait_for(driver, lambda d: "multilingual-e5-small" in by_id(d, "server-info").text)
    type_into(driver, "api-key", str(live_server.key))
    stored = driver.execute_script("return [sessionStorage.getItem('labelwise.apiKey'), localStorage.length]")
    assert stored == [live_server.key, 0]

    # When a zero-shot request has a duplicated label
    type_into(driver, "zs-labels", "positive review\npositive review")
    type_into(driver, "zs-texts", "I love this phone, it works perfectly.")
    by_id(driver, "zs-run").click()
    # Then the API's detail shows next to the labels
    wait_for(driver, lambda d: by_id(d, "zs-labels-error").text)
    assert "INPUT_INVALID_LABELS" in by_id(driver, "zs-labels-error").text

    # When the user classifies two reviews zero-shot
    type_into(driver, "zs-labels", "positive review\nnegative review")
    type_into(driver, "zs-texts", "I love this phone, it works perfectly.\nTerrible, it broke after one day.")
    by_id(driver, "zs-run").click()
    # Then a table of scores per input, with bars, names the right label for each
    wait_for(driver, lambda d: css(d, "#zs-results table.scores tbody tr"))
    table = css(driver, "#zs-results table.scores")[0]
    assert best_labels(table) == ["positive review", "negative review"]
    assert len(css(driver, "#zs-results .bar > span")) == 4
    assert not by_id(driver, "zs-labels-error").text

    # When two wordings of the same labels are compared side by side, on more reviews
    by_id(driver, "zs-compare").click()
    type_into(driver, "zs-labels-b", "I would recommend it\nI would not recommend it")
    type_into(driver, "zs-texts", "\n".join(REVIEWS))
    by_id(driver, "zs-run").click()
    # Then both score tables show, with the agreement between them, input by input
    wait_for(driver, lambda d: css(d, "#zs-agreement-summary"))
    summary = by_id(driver, "zs-agreement-summary").text
    assert re.fullmatch(r"Agreement: [0-5]/5 inputs \(\d+%\)", summary), summary
    assert len(css(driver, "#zs-results table.scores")) == 2
    rows = css(driver, "#zs-agreement table.agreement tbody tr")
    assert len(rows) == 5 and {r.text.split()[-1] for r in rows} <= {"agree", "differ"}
    shot = tmp_path / "playground.png"
    screenshot(driver, shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("LABELWISE_PLAYGROUND_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["LABELWISE_PLAYGROUND_SCREENSHOT"])

    # When the user trains from a small CSV chosen in the file input
    examples = tmp_path / "examples.csv"
    examples.write_text(
        "text,label\n"
        "My card was charged twice,billing\n"
        '"I was billed for an order I cancelled, please refund",billing\n'
        "The invoice amount is wrong,billing\n"
        "Why did you charge my credit card again?,billing\n"
        "Where is my parcel?,shipping\n"
        "The package has not arrived yet,shipping\n"
        "Tracking says the delivery is delayed,shipping\n"
        "When will my order be shipped?,shipping\n"
    )
    by_id(driver, "tab-fewshot").click()
    by_id(driver, "fs-file").send_keys(str(examples))
    wait_for(driver, lambda d: "text,label" in by_id(d, "fs-examples").get_attribute("value"))
    type_into(driver, "fs-iters", "20")
    by_id(driver, "fs-train").click()
    # Then the new classifier's id and version show, and it is listed
    wait_for(driver, lambda d: by_id(d, "fs-trained").is_displayed())
    classifier_id = by_id(driver, "fs-trained-id").text
    assert classifier_id and by_id(driver, "fs-trained-version").text == "1"
    assert by_id(driver, "fs-trained-labels").text == "billing, shipping"
    wait_for(driver, lambda d: css(d, f"#fs-list tr[data-classifier='{classifier_id}']"))

    # When the user classifies with it
    assert by_id(driver, "fs-classifier-id").get_attribute("value") == classifier_id
    type_into(
        driver, "fs-texts", "You charged me two times for one purchase\nMy box still has not been delivered"
    )
    driver.execute_script(  # (the answer held back a second, to see the request in flight)
        "const f = window.fetch; window.fetch = (...a) => "
        "new Promise(r => setTimeout(r, 1000)).then(() => { window.fetch = f; return f(...a); })"
    )
    by_id(driver, "fs-classify").click()
    # Then a spinner counts the seconds while the request is in flight
    wait_for(
        driver,
        lambda d: css(d, "#fs-classify + .progress") and css(d, "#fs-classify + .progress")[0].is_displayed(),
    )
    assert "working" in css(driver, "#fs-classify + .progress")[0].text
    assert not by_id(driver, "fs-classify").is_enabled()
    # And each text gets the right label, the spinner gone
    wait_for(driver, lambda d: css(d, "#fs-results table.scores tbody tr"))
    assert not css(driver, "#fs-classify + .progress")[0].is_displayed()
    assert best_labels(css(driver, "#fs-results table.scores")[0]) == ["billing", "shipping"]

    # When the user deletes it (and confirms)
    css(driver, f"button[data-delete='{classifier_id}']")[0].click()
    wait_for(driver, lambda d: d.switch_to.alert).accept()
    # Then it leaves the list, and the API no longer has it
    wait_for(driver, lambda d: not css(d, f"#fs-list tr[data-classifier='{classifier_id}']"))
    listed = requests.get(f"{live_server.url}/v1/classifiers", headers=live_server.headers(), timeout=30)
    assert classifier_id not in [c["classifier_id"] for c in listed.json()]
    # And the page loaded nothing from another host
    hosts = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert set(hosts) <= {live_server.url.split("//", 1)[1]}


def test_playground_classifies_an_uploaded_image(
    browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    from PIL import Image

    from labelwise.settings import Settings

    if not (Settings.from_environ().model_dir / "efficientnet-lite0" / "model.onnx").exists():
        pytest.skip("image model not built: run `make model`")
    driver = browser
    # Given the playground opened at the link `labelwise serve` prints, the key in its fragment
    driver.get(f"{live_server.url}/playground")
    driver.execute_script("sessionStorage.clear()")
    driver.get("about:blank")
    driver.get(f"{live_server.url}/playground#key={live_server.key}")
    wait_for(driver, lambda d: by_id(d, "api-key").get_attribute("value") == live_server.key)
    # Then the page keeps the key for the tab and drops it from the address
    assert "#key" not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('labelwise.apiKey')") == live_server.key
    # And labels, and no text
    type_into(driver, "zs-labels", "a red square\na photo of a cat")
    # When a file that is not an image is uploaded
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    by_id(driver, "zs-image-file").send_keys(str(not_image))
    by_id(driver, "zs-run").click()
    # Then the API's detail shows next to the image fields
    wait_for(driver, lambda d: by_id(d, "zs-images-error").text)
    assert "INPUT_INVALID_IMAGE" in by_id(driver, "zs-images-error").text

    # When an image file is uploaded instead
    square = tmp_path / "square.png"
    Image.new("RGB", (64, 64), (220, 20, 20)).save(square)
    driver.execute_script("document.getElementById('zs-image-file').value = ''")
    by_id(driver, "zs-image-file").send_keys(str(square))
    by_id(driver, "zs-run").click()
    # Then it gets a row of scores, named after the file
    wait_for(driver, lambda d: css(d, "#zs-results table.scores tbody tr"))
    table = css(driver, "#zs-results table.scores")[0]
    assert table.find_elements("css selector", "td.input")[0].text == "image: square.png"
    assert best_labels(table)[0] in ("a red square", "a photo of a cat")
    assert not by_id(driver, "zs-images-error").text


def best_label_sets(table: Any) -> list[set[str]]:
    """Every label whose cell is marked best, per row of a score table (several for multi-label)."""
    from selenium.webdriver.common.by import By

    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    return [
        {
            headers[i]
            for i, cell in enumerate(row.find_elements(By.TAG_NAME, "td"))
            if "best" in cell.get_attribute("class")
        }
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_playground_trains_and_shows_a_multi_label_classifier(browser: Any, live_server: LiveServer) -> None:
    driver = browser
    # Given the playground with the key pasted in, on the few-shot tab
    driver.get(f"{live_server.url}/playground")
    wait_for(driver, lambda d: "multilingual-e5-small" in by_id(d, "server-info").text)
    type_into(driver, "api-key", str(live_server.key))
    by_id(driver, "tab-fewshot").click()
    # When the user pastes examples with several labels, or none, per text and ticks multi-label
    type_into(
        driver,
        "fs-examples",
        "text,label\n"
        "The striker scored twice in the football match,sports\n"
        "The tennis final went to five sets,sports\n"
        "Parliament passed the budget after a long vote,politics\n"
        "The senator proposed a new law on taxes,politics\n"
        "The minister opened the new football stadium,sports|politics\n"
        "Lawmakers debated funding for the Olympic team,sports|politics\n"
        "Bake the bread for forty minutes,\n"
        "Water the tomatoes every morning,\n",
    )
    by_id(driver, "fs-multi-label").click()
    type_into(driver, "fs-iters", "20")
    by_id(driver, "fs-train").click()
    # Then the classifier is created multi-label, with both labels
    wait_for(driver, lambda d: by_id(d, "fs-trained").is_displayed())
    classifier_id = by_id(driver, "fs-trained-id").text
    assert by_id(driver, "fs-trained-kind").text == "multi-label"
    assert by_id(driver, "fs-trained-labels").text == "sports, politics"
    # And the list of classifiers names its kind
    wait_for(driver, lambda d: css(d, f"#fs-list tr[data-classifier='{classifier_id}'] td.kind"))
    assert css(driver, f"#fs-list tr[data-classifier='{classifier_id}'] td.kind")[0].text == "multi-label"

    # When the user classifies texts with it
    texts = ["The president watched the football final", "Knead the dough and let it rise"]
    type_into(driver, "fs-texts", "\n".join(texts))
    by_id(driver, "fs-classify").click()
    wait_for(driver, lambda d: css(d, "#fs-results table.scores tbody tr"))
    # Then each row marks every label the API predicts (any number of them, none included)
    shown = best_label_sets(css(driver, "#fs-results table.scores")[0])
    answer = requests.post(
        f"{live_server.url}/v1/classify", json={"classifier_id": classifier_id, "input": texts},
        headers=live_server.headers(), timeout=60,
    ).json()  # fmt: skip
    assert shown == [set(item["prediction"]) for item in answer["data"]]
    assert all(isinstance(item["prediction"], list) for item in answer["data"])
