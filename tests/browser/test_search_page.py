from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from catalog.models import Product, ProductImage
from indexing.services import index_catalog
from search.query import Filters, SearchQuery, search
from tests.factories import ProductFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(transactional_db, redis_client, settings):
    """Demo products (real photos) embedded with the real default model, plus one product
    with two photos of our own."""
    settings.SEARCH_MODEL = "effnet-lite2-minilm"
    call_command("load_demo_catalog", limit=24, verbosity=0)
    ProductFactory(
        sku="RING-ROSE", title="Rose gold oval sapphire ring", metal="rose_gold", gemstone="sapphire", photos=[1, 2]
    )
    index_catalog(
        list(Product.objects.values_list("pk", flat=True)), list(ProductImage.objects.values_list("pk", flat=True))
    )
    return list(Product.objects.order_by("sku"))


def _results(browser) -> list[str]:
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#results .card, .error, .empty"))
    return [card.text.split("\n")[0] for card in browser.find_elements(By.CSS_SELECTOR, "#results .card .title")]


def test_uploading_a_demo_photo_shows_its_product_first(browser, live_server, shop, tmp_path):
    product = next(p for p in shop if p.sku != "RING-ROSE")
    photo = tmp_path / "my-photo.jpg"
    photo.write_bytes(product.images.get().image.read())
    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "photo-input").send_keys(str(photo))  # the page submits on change
    titles = _results(browser)
    assert titles[0] == product.title
    assert len(titles) == len(set(titles))
    assert "Looks like:" in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "img.query-photo").get_attribute("naturalWidth") != "0"
    browser.save_screenshot(str(tmp_path / "results.png"))


def test_typing_a_query_and_applying_a_metal_filter(browser, live_server, shop):
    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "id_text").send_keys("oval sapphire ring")
    browser.find_element(By.CSS_SELECTOR, ".words button").click()
    assert "Rose gold oval sapphire ring" in _results(browser)
    Select(browser.find_element(By.ID, "id_metal")).select_by_visible_text("Rose gold")
    browser.find_element(By.CSS_SELECTOR, ".words button").click()
    titles = _results(browser)
    rose = {p.title for p in shop if p.metal == "rose_gold"}
    assert titles
    assert set(titles) <= rose
    # every rose gold piece the words match, up to k (the matching set the facets count)
    matching = search(SearchQuery(text="oval sapphire ring", filters=Filters(metal="rose_gold"), k=20))
    assert "Rose gold oval sapphire ring" in titles
    assert len(titles) == min(20, matching.total_matching) == len(matching.results)
    assert all("Rose gold" in meta.text for meta in browser.find_elements(By.CSS_SELECTOR, "#results .meta"))
    assert "metal=rose_gold" in browser.current_url


def test_uploading_a_pdf_shows_the_reason_in_words(browser, live_server, shop, tmp_path):
    fake = tmp_path / "invoice.jpg"
    fake.write_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n")
    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "photo-input").send_keys(str(fake))
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".error"))
    assert "PDF" in browser.find_element(By.CSS_SELECTOR, ".error").text


def test_more_like_this_and_product_page(browser, live_server, shop):
    browser.get(live_server.url + "/products/RING-ROSE/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Rose gold oval sapphire ring"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".gallery img")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, ".grid .card")
    browser.find_element(By.LINK_TEXT, "More like this").click()
    titles = _results(browser)
    assert titles
    assert "Rose gold oval sapphire ring" not in titles
