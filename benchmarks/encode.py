"""Image backbone inference: every CPU backend against eager fp32, same model, same photos.

    python -m benchmarks.encode [--quick] [--full]

Throughput is images per second at batch 32 (the indexing batch), latency is one photo
(a shopper's query). Backends are timed in interleaved rounds (eager, b, c, eager, b,
c, ...) and the median round counts, so a burst of load from other processes on a shared
machine hits every backend alike. Quality: cosine between each backend's vectors and
eager fp32 over all the demo photos (>= 100), on the raw 1280-d features and on the
fused 512-d search vectors (image-only query vectors and photo + text product vectors).
A backend is eligible when both minima are >= 0.99; the fastest eligible one is "best".

Also writes the eager base embeddings of the demo products (raw and fused) to
`.cache/bench/`, the seed of the synthetic catalog in `benchmarks/synthetic.py`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .common import CACHE_DIR, OUT_DIR, load_average, percentile, setup_logging

logger = logging.getLogger("benchmarks.encode")

BATCH = 32
MIN_COSINE = 0.99
CALIBRATION_PHOTOS = 64  # static int8 calibration: training-split photos
QUICK_PHOTOS = 112  # --quick still checks quality on >= 100 real photos


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _run(encoder, pixels: torch.Tensor, batch: int = BATCH) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch):
            out.append(encoder(pixels[start : start + batch]).float().numpy())
    return np.concatenate(out)


def demo_photos(limit: int | None = None):
    """Decoded demo photos (all 236 unless limited), with decode and preprocessing timings."""
    from ml.data.giva import load_products, product_image_bytes
    from ml.preprocess import load_image

    products = load_products()[:limit]
    raw = [product_image_bytes(p) for p in products]
    started = time.perf_counter()
    images = [load_image(data) for data in raw]
    decode_ms = (time.perf_counter() - started) / len(raw) * 1000
    return products, raw, images, decode_ms


def draft_decode_check(raw: list[bytes], config, encoder) -> dict:
    """What JPEG draft decoding (DCT-domain downscale to >= the resize) would save."""
    import io

    from PIL import Image, ImageOps

    from ml.preprocess import load_image, to_tensor

    resize = int(config["preprocess"]["resize"])
    sample = raw[:48]

    def draft_load(data: bytes):
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (resize, resize))
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")

    t = time.perf_counter()
    full = [load_image(d) for d in sample]
    full_ms = (time.perf_counter() - t) / len(sample) * 1000
    t = time.perf_counter()
    drafted = [draft_load(d) for d in sample]
    draft_ms = (time.perf_counter() - t) / len(sample) * 1000
    a = _run(encoder, to_tensor(full, config))
    b = _run(encoder, to_tensor(drafted, config))
    cos = _cosines(a, b)
    return {
        "decode_full_ms": round(full_ms, 2),
        "decode_draft_ms": round(draft_ms, 2),
        "draft_min_cosine": round(float(cos.min()), 5),
    }


def build_backends(
    model, pixels: torch.Tensor, calibration: torch.Tensor, *, full: bool, quick: bool, workdir: Path
) -> dict:
    """name -> (callable on a pixel batch, note). Failing backends are reported, not fatal."""
    from ml import accel
    from ml.registry import weights_hash

    eager = model.image_encoder
    config = dict(model.config)
    key = weights_hash(model.spec.image)
    threads = torch.get_num_threads()
    backends: dict[str, tuple] = {"eager": (eager, f"PyTorch fp32, {threads} threads")}
    failures: dict[str, str] = {}

    def attempt(name, build, note):
        started = time.perf_counter()
        logging.disable(logging.WARNING)  # onnxruntime's quantizer logs every tensor on the root logger
        try:
            backends[name] = (build(), f"{note} (built in {time.perf_counter() - started:.1f}s)")
        except Exception as exc:
            logging.disable(logging.NOTSET)
            logger.warning("backend %s failed: %s", name, exc)
            failures[name] = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            logging.disable(logging.NOTSET)

    attempt("channels-last", lambda: accel.ChannelsLastImageEncoder(eager), "PyTorch fp32 channels-last")
    onnx_path: dict[str, Path] = {}

    def onnx_fp32():
        encoder = accel.onnx_image_encoder(eager, config, key, threads=threads)
        onnx_path["fp32"] = Path(encoder.source)
        return encoder

    attempt("onnx", onnx_fp32, f"ONNX Runtime fp32, {threads} threads, no spin-wait (ml.accel default)")
    if "onnx" in backends and onnx_path["fp32"].is_file():
        path = onnx_path["fp32"]
        attempt(
            "onnx-spin",
            lambda: accel.OnnxImageEncoder(accel.ort_session(path, threads=threads, spinning=True), 1280, str(path)),
            f"ONNX Runtime fp32, {threads} threads, spin-wait on (ORT's default)",
        )
        if threads > 1:
            attempt(
                "onnx-1thread",
                lambda: accel.OnnxImageEncoder(accel.ort_session(path, threads=1), 1280, str(path)),
                "ONNX Runtime fp32, 1 thread",
            )

        def int8_static():
            from onnxruntime.quantization import (
                CalibrationDataReader,
                QuantFormat,
                QuantType,
                quantize_static,
            )
            from onnxruntime.quantization.shape_inference import quant_pre_process

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.items = iter(
                        [{"pixel_values": calibration[i : i + 1].numpy()} for i in range(len(calibration))]
                    )

                def get_next(self):
                    return next(self.items, None)

            pre, out = workdir / "pre.onnx", workdir / "int8-static.onnx"
            quant_pre_process(str(path), str(pre))
            quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            return accel.OnnxImageEncoder(accel.ort_session(out, threads=threads), 1280, str(out))

        def int8_dynamic():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            out = workdir / "int8-dynamic.onnx"
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QUInt8)
            return accel.OnnxImageEncoder(accel.ort_session(out, threads=threads), 1280, str(out))

        attempt(
            "onnx-int8-static", int8_static, f"ORT int8 static QDQ per-channel, {len(calibration)} calibration photos"
        )
        attempt("onnx-int8-dynamic", int8_dynamic, "ORT int8 dynamic (weights only)")

    def torch_dynamic_quant():
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(eager), {torch.nn.Linear}, dtype=torch.qint8)
        return quantized.eval()

    if not full:
        # Measured once (docs/performance.md), slower than eager or no faster, and each
        # costs a minute of a 2-core run: only with --full.
        failures["torch-dynamic-int8"] = "skipped (--full): touches no layer of a conv backbone, = eager"
        failures["torch-bf16"] = "skipped (--full): measured ~eager speed, cosine 0.992"
        failures["torch-compile"] = "skipped (--full): compiles ~100 s on 2 cores, measured 0.5x eager"
        return {"backends": backends, "failures": failures}
    attempt(
        "torch-dynamic-int8", torch_dynamic_quant, "torch dynamic quantisation (Linear only: the backbone has none)"
    )

    def bf16():
        module = accel.ChannelsLastImageEncoder(eager)

        def run(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return module(x).float()

        return run

    attempt("torch-bf16", bf16, "PyTorch bf16 autocast, channels-last")

    def compiled():
        module = torch.compile(copy.deepcopy(eager), dynamic=False)
        with torch.inference_mode():
            module(pixels[:BATCH])  # compiles for the batch shape (minutes on 2 cores)
        return module

    attempt("torch-compile", compiled, "torch.compile (inductor, CPU)")
    return {"backends": backends, "failures": failures}


def load_bench_model():
    """The default model; with a seeded random fusion when the trained one does not load
    (mid-training): backbone speed and fidelity do not depend on the fusion weights."""
    from ml.errors import ModelLoadError
    from ml.model import load_model

    try:
        return load_model(), "trained"
    except ModelLoadError as exc:
        logger.warning("trained fusion unavailable (%s): benchmarking with a random:0 fusion", exc)
        return load_model(fusion_weights="random:0"), f"random:0 ({str(exc)[:120]})"


def run(quick: bool = False, full: bool = False) -> dict:
    from ml.model import FusionInput
    from ml.preprocess import to_tensor

    model, fusion_note = load_bench_model()
    config = dict(model.config)
    products, raw, images, decode_ms = demo_photos()
    started = time.perf_counter()
    pixels = to_tensor(images, config)
    preprocess_ms = (time.perf_counter() - started) / len(images) * 1000
    from ml.data.giva import product_search_text
    from ml.training.data import split_products

    train_skus, _ = split_products(products)
    train_index = [i for i, p in enumerate(products) if p.sku in set(train_skus)]
    calibration = pixels[train_index[:CALIBRATION_PHOTOS]]

    with tempfile.TemporaryDirectory() as tmp:
        built = build_backends(model, pixels, calibration, full=full, quick=quick, workdir=Path(tmp))
        backends, failures = built["backends"], built["failures"]

        # Speed: interleaved rounds, the median round counts.
        rounds = 3
        batch = pixels[:BATCH]
        single = [pixels[i : i + 1] for i in range(2 * rounds)]
        throughput: dict[str, list[float]] = {name: [] for name in backends}
        latency: dict[str, list[float]] = {name: [] for name in backends}
        batch_out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for encoder, _ in backends.values():
                encoder(batch[:2])  # warm each shape once
                encoder(single[0])
            for round_ in range(rounds):
                for name, (encoder, _) in backends.items():
                    t = time.perf_counter()
                    batch_out[name] = encoder(batch).float().numpy()
                    throughput[name].append(BATCH / (time.perf_counter() - t))
                    for one in single[round_ * 2 : round_ * 2 + 2]:
                        t = time.perf_counter()
                        encoder(one)
                        latency[name].append(time.perf_counter() - t)
        eager_rate = statistics.median(throughput["eager"])

        # Quality. Every backend on the timed batch first; then, fastest first, the full
        # photo set for candidates until one passes: that one is "best". The rest keep
        # their batch-only check (they could not have been best).
        eager = backends["eager"][0]
        photos = pixels if not quick else pixels[:QUICK_PHOTOS]
        logger.info("eager reference over %d photos", len(pixels))
        reference = _run(eager, pixels)  # all demo photos: also the synthetic catalog's seed
        texts = model.text_features([product_search_text(p) for p in products])

        def measure(features: np.ndarray) -> dict:
            ref = reference[: len(features)]
            fused, fused_ref = (
                model.fuse([FusionInput(image_features=row[None, :]) for row in f]) for f in (features, ref)
            )
            product, product_ref = (
                model.fuse(
                    [FusionInput(image_features=a[None, :], text_features=t) for a, t in zip(f, texts, strict=False)]
                )
                for f in (features, ref)
            )
            return {
                "raw_min_cosine": round(float(_cosines(features, ref).min()), 7),
                "fused_min_cosine": round(float(_cosines(fused, fused_ref).min()), 7),
                "product_min_cosine": round(float(_cosines(product, product_ref).min()), 7),
                "photos": len(features),
            }

        quality = {name: measure(reference if name == "eager" else batch_out[name]) for name in backends}
        for name in sorted(backends, key=lambda n: -statistics.median(throughput[n])):
            if name == "eager" or min(v for k, v in quality[name].items() if k.endswith("cosine")) < MIN_COSINE:
                continue
            quality[name] = measure(_run(backends[name][0], photos))
            logger.info("%s quality %s", name, quality[name])
            if min(v for k, v in quality[name].items() if k.endswith("cosine")) >= MIN_COSINE:
                break
        fused_all = model.fuse([FusionInput(image_features=row[None, :]) for row in reference])
        product_all = model.fuse(
            [FusionInput(image_features=a[None, :], text_features=t) for a, t in zip(reference, texts, strict=False)]
        )

        # batch size curve for eager and onnx (batching: does a bigger batch pay?)
        batching = {}
        with torch.inference_mode():
            for name in ("eager", "onnx"):
                if name not in backends:
                    continue
                encoder = backends[name][0]
                batching[name] = {}
                for size in (1, 8, 32):
                    t = time.perf_counter()
                    encoder(pixels[:size])
                    batching[name][str(size)] = round(size / (time.perf_counter() - t), 1)
        draft = draft_decode_check(raw, config, backends.get("onnx", backends["eager"])[0])

    table = {}
    for name, (_, note) in backends.items():
        cosines = [v for k, v in quality[name].items() if k.endswith("min_cosine")]
        table[name] = {
            "img_per_s": round(statistics.median(throughput[name]), 2),
            "b1_p50_ms": round(percentile([s * 1000 for s in latency[name]], 50), 1),
            **quality[name],
            "eligible": bool(min(cosines) >= MIN_COSINE and quality[name]["photos"] >= 100),
            "checked_on": "all photos" if quality[name]["photos"] >= 100 else "first batch only",
            "note": note,
        }
    eager_rate = table["eager"]["img_per_s"]
    for row in table.values():
        row["speedup"] = round(row["img_per_s"] / eager_rate, 2)
    eligible = {name: row for name, row in table.items() if row["eligible"]}  # eager always is
    best = max(eligible, key=lambda name: eligible[name]["img_per_s"])
    result = {
        "encode.eager_img_per_s": eager_rate,
        "encode.best_img_per_s": table[best]["img_per_s"],
        "encode.best_backend": best,
        "encode.speedup": table[best]["speedup"],
        "encode.best_min_cosine_vs_eager": min(v for k, v in table[best].items() if k.endswith("min_cosine")),
        "encode.version": model.version,
        "encode.fusion": fusion_note,
        "encode.eager_b1_ms": table["eager"]["b1_p50_ms"],
        "encode.best_b1_ms": table[best]["b1_p50_ms"],
        "encode.photos": table[best]["photos"],
        "encode.decode_ms_per_img": round(decode_ms, 2),
        "encode.preprocess_ms_per_img": round(preprocess_ms, 2),
        "encode.threads": torch.get_num_threads(),
        "encode.load_average": load_average(),
        "encode.detail": {"backends": table, "failures": failures, "batching_img_per_s": batching, "jpeg_draft": draft},
    }
    _save_base_embeddings(model, products[: len(reference)], reference, texts, fused_all, product_all)
    return result


def base_embeddings_path(version: str) -> Path:
    return CACHE_DIR / f"base-{version.replace('@', '-')}.npz"


def _save_base_embeddings(model, products, features, texts, fused, product) -> None:
    path = base_embeddings_path(model.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        skus=np.array([p.sku for p in products]),
        categories=np.array([p.category for p in products]),
        image=fused.astype(np.float32),
        product=product.astype(np.float32),
        image_features=features.astype(np.float32),
        text_features=texts.astype(np.float32),
    )
    logger.info("base embeddings of %d demo products in %s", len(products), path)


def print_table(result: dict) -> None:
    rows = result["encode.detail"]["backends"]
    print(
        f"{'backend':<20} {'img/s b32':>9} {'x eager':>7} {'b1 ms':>7} "
        f"{'cos raw':>8} {'cos fused':>9} {'cos prod':>8}  ok"
    )
    for name, row in sorted(rows.items(), key=lambda item: -item[1]["img_per_s"]):
        below = min(row["raw_min_cosine"], row["fused_min_cosine"]) < MIN_COSINE
        verdict = "yes" if row["eligible"] else "no" if below else "batch-only"
        print(
            f"{name:<20} {row['img_per_s']:>9.1f} {row['speedup']:>7.2f} {row['b1_p50_ms']:>7.1f} "
            f"{row['raw_min_cosine']:>8.5f} {row['fused_min_cosine']:>9.5f} {row['product_min_cosine']:>8.5f}  "
            f"{verdict}"
        )
    for name, reason in result["encode.detail"]["failures"].items():
        print(f"{name:<20} {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true", help="also torch.compile (minutes)")
    args = parser.parse_args()
    setup_logging()
    result = run(quick=args.quick, full=args.full)
    print_table(result)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "encode.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
