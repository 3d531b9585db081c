"""Product text and the text encoder's truncation."""

from __future__ import annotations

from ml.text import product_text


def test_product_text_puts_title_and_attributes_before_the_description():
    text = product_text("Aura Ring", "Ring", "rose_gold", "diamond", "A slim band.", stone_shape="round")
    assert text == "Aura Ring. Ring. Metal: rose gold. Gemstone: diamond. Stone shape: round. A slim band."


def test_product_text_skips_missing_attributes():
    assert product_text("Plain Bangle", "Bangle", "", None, "None") == "Plain Bangle. Bangle"


def test_long_descriptions_are_truncated_but_title_and_attributes_survive(tiny_model):
    text = product_text("Aura Ring", "Ring", "rose gold", "diamond", "sparkle " * 5000)
    tokens = tiny_model.text_encoder.tokenize([text])["input_ids"][0]
    assert len(tokens) == tiny_model.text_encoder.max_length
    decoded = tiny_model.text_encoder.tokenizer.decode(tokens)
    assert "aura ring" in decoded
    assert "rose gold" in decoded
    assert "diamond" in decoded
