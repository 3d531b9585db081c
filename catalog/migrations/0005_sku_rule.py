"""The SKU rule (catalog/validators.py): existing SKUs that break it are reported and
rewritten (deterministically, staying unique; the old value is kept in `legacy_sku`),
then the field validates it and the database enforces it."""

import logging
import re
import sys

from django.db import migrations, models

import catalog.validators

logger = logging.getLogger("catalog.migrations")
# The rule as it stood when this migration was written (frozen here, like the schema).
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-]")
_MAX_LENGTH = 64


def is_valid_sku(value: str) -> bool:
    return 0 < len(value) <= _MAX_LENGTH and all(_ALLOWED.fullmatch(c) for c in value) and value not in (".", "..")


def repair_sku(value: str, taken: set[str]) -> str:
    """Disallowed characters become '_', cut to the bound, '-N' keeps it unique."""
    base = "".join(c if _ALLOWED.fullmatch(c) else "_" for c in value)[:_MAX_LENGTH]
    if base in ("", ".", ".."):
        base = "SKU" + base.replace(".", "_")
    candidate, counter = base, 1
    while candidate in taken:
        suffix = f"-{counter}"
        candidate = base[: _MAX_LENGTH - len(suffix)] + suffix
        counter += 1
    return candidate


def repair_skus(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    db = schema_editor.connection.alias
    taken = set(Product.objects.using(db).values_list("sku", flat=True))
    bad = [
        (pk, sku)
        for pk, sku in Product.objects.using(db).order_by("pk").values_list("pk", "sku")
        if not is_valid_sku(sku)
    ]
    for pk, sku in bad:
        new = repair_sku(sku, taken)
        taken.add(new)
        Product.objects.using(db).filter(pk=pk).update(sku=new, legacy_sku=sku)
        # A migration's own report: shown by `migrate` whatever the logging setup.
        message = f"  SKU of product {pk} rewritten: {sku!r} -> {new!r} (old value kept in legacy_sku)"
        logger.warning(message.strip())
        sys.stdout.write(message + "\n")
    if bad:
        sys.stdout.write(f"  {len(bad)} SKU(s) broke the SKU rule and were rewritten.\n")


def restore_skus(apps, schema_editor):
    """Reverse: the old values come back when nothing else took them since."""
    Product = apps.get_model("catalog", "Product")
    db = schema_editor.connection.alias
    for product in Product.objects.using(db).exclude(legacy_sku=""):
        if not Product.objects.using(db).filter(sku=product.legacy_sku).exists():
            Product.objects.using(db).filter(pk=product.pk).update(sku=product.legacy_sku, legacy_sku="")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0004_price_on_request_and_shop_currency"),
    ]

    operations = [
        migrations.AddField(
            model_name="product",
            name="legacy_sku",
            field=models.CharField(
                blank=True,
                default="",
                editable=False,
                help_text="The SKU as it was stored before the SKU rule (migration 0005 rewrote it); empty if it complied",
                max_length=64,
            ),
        ),
        migrations.RunPython(repair_skus, restore_skus),
        migrations.AlterField(
            model_name="product",
            name="sku",
            field=models.CharField(
                help_text=catalog.validators.SKU_RULE,
                max_length=64,
                unique=True,
                validators=[catalog.validators.validate_sku],
            ),
        ),
        migrations.AddConstraint(
            model_name="product",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("sku__regex", "^[A-Za-z0-9_.-]{1,64}$"), models.Q(("sku__in", [".", ".."]), _negated=True)
                ),
                name="sku_follows_sku_rule",
                violation_error_message=catalog.validators.SKU_RULE,
            ),
        ),
    ]
