"""Zero-downtime model upgrade: build the new version's vectors next to the serving ones,
then switch search over in one transaction.

While the new version backfills, search keeps serving the active one, and every catalog
edit is embedded for both (indexing.engine.versions_to_index). Running the command again
for the same model and weights picks up where it stopped.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from indexing import services
from indexing.dispatch import index_chunks
from indexing.engine import active_version, load_search_model, register_version
from indexing.models import ModelVersion

WATCH_INTERVAL_SECONDS = 0.5
SYNC_PASSES = 3  # rows created while a pass runs are picked up by the next one


class Command(BaseCommand):
    help = "Register a new model version, backfill it through the worker and switch search to it when complete."

    def add_arguments(self, parser):
        parser.add_argument("model", help="model config name (ml/configs/<name>.json)")
        parser.add_argument("--image-weights", help="image backbone weights spec (see ml/registry.py)")
        parser.add_argument("--text-weights", help="text encoder weights spec")
        parser.add_argument("--fusion-weights", help="fusion weights spec")
        parser.add_argument("--sync", action="store_true", help="backfill in this process, no worker needed")
        parser.add_argument("--no-switch", action="store_true", help="backfill only; run again without it to switch")
        parser.add_argument("--timeout", type=float, default=None, help="stop waiting after this many seconds")

    def handle(
        self,
        *args,
        model: str,
        image_weights: str | None,
        text_weights: str | None,
        fusion_weights: str | None,
        sync: bool,
        no_switch: bool,
        timeout: float | None,
        **options,
    ):
        from ml.errors import ModelLoadError

        weights = {
            key: value
            for key, value in {
                "image_weights": image_weights,
                "text_weights": text_weights,
                "fusion_weights": fusion_weights,
            }.items()
            if value
        }
        try:
            new_model = load_search_model(model, weights)
        except (ModelLoadError, RuntimeError) as exc:
            raise CommandError(str(exc)) from None
        active = active_version()
        if new_model.version == active.version:
            self.stdout.write(f"{active.version} is already serving search")
            return
        version = register_version(new_model, weights=weights)
        if version.state == ModelVersion.State.RETIRED:  # back to an earlier version: rebuild what was pruned
            version.state = ModelVersion.State.BACKFILLING
            version.save(update_fields=["state"])
        others = ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING).exclude(pk=version.pk)
        for other in others:
            self.stderr.write(f"note: {other.version} is also being built; every edit is embedded for it too")
        self.stdout.write(f"serving {active.version}; building {version.version}")
        quiet = options["verbosity"] == 0
        started = time.perf_counter()
        if sync:
            self._backfill_here(version, quiet)
        else:
            self._backfill_with_worker(version, quiet, timeout)
        done, total = services.backfill_progress(version)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"{version.version}: {done}/{total} rows in {elapsed:.1f}s")
        if no_switch:
            self.stdout.write("not switched (--no-switch): run the same command again without it to switch")
            return
        services.activate_version(version)
        self.stdout.write(
            f"{version.version} now serves search; {active.version} is retired "
            f"(`manage.py prune_embeddings` deletes its rows)"
        )

    def _backfill_here(self, version: ModelVersion, quiet: bool) -> None:
        for _ in range(SYNC_PASSES):
            product_ids, image_ids = services.missing_ids(version)
            if not product_ids and not image_ids:
                break
            with tqdm(total=len(image_ids) + len(product_ids), unit="row", desc="backfill", disable=quiet) as bar:
                for chunk_products, chunk_images in index_chunks(product_ids, image_ids):
                    services.backfill_version(version, chunk_products, chunk_images)
                    bar.update(len(chunk_products) + len(chunk_images))
        if not services.backfill_complete(version):
            raise CommandError(f"{version.version} is still missing rows; run the command again")

    def _backfill_with_worker(self, version: ModelVersion, quiet: bool, timeout: float | None) -> None:
        from indexing.health import check_worker
        from indexing.tasks import send_backfill_tasks

        product_ids, image_ids = services.missing_ids(version)
        if product_ids or image_ids:
            try:
                tasks = send_backfill_tasks(version, product_ids, image_ids)
            except Exception as exc:
                raise CommandError(
                    f"could not enqueue the backfill ({exc}); {version.version} stays registered and the sweep "
                    f"enqueues it once the broker is back, or run again with --sync"
                ) from None
            self.stdout.write(f"enqueued {tasks} backfill tasks")
            if check_worker() != "ok":
                self.stderr.write("no worker answers: start one (`make run` does) or use --sync")
        deadline = None if timeout is None else time.monotonic() + timeout
        done, total = services.backfill_progress(version)
        with tqdm(total=total, initial=done, unit="row", desc="backfill", disable=quiet) as bar:
            while not services.backfill_complete(version):
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(
                        f"{version.version} is still backfilling after {timeout}s ({done}/{total} rows); "
                        f"run the command again to keep waiting"
                    )
                time.sleep(WATCH_INTERVAL_SECONDS)
                done, total = services.backfill_progress(version)
                bar.total, bar.n = total, done
                bar.refresh()
