"""Serving an image generator: the model server's adapter (``POST /generate`` with
``{"classes": ["3", "7"]}`` or ``{"counts": {"3": 2}}``, optional ``steps``, ``guidance``,
``seed``, ``format`` png|array) and the smoke test of a deployed endpoint (local REST, or
KServe's genops-server runtime, which runs the same server)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Hashable, Sequence
from typing import Any

import httpx
import numpy as np
import orjson

from genops.core.serving.request import RequestError
from genops.core.workload import ServingAdapter, SmokeResult
from genops.workloads.image.config import ImageRunConfig


class ImageAdapter(ServingAdapter):
    """The server's view of an :class:`~genops.workloads.image.pyfunc.ImageGeneratorModel`;
    sampling does not mutate the model, so requests run in parallel threads.

    Concurrent requests with the same steps and guidance are sampled together when DDIM is
    deterministic (``eta == 0``, the default): each request's starting noise is drawn from
    its own generator seeded as :meth:`DiffusionModel.sample` seeds it, the noises are
    stacked and denoised in one pass of the U-Net per step, and the images split back. The
    same seed gives the same images alone or batched, up to the last bits of the network's
    float arithmetic over a larger batch (a PNG pixel or a 5-decimal array value can then,
    rarely, differ by one step). With ``eta > 0`` every step draws noise from one generator
    per call, so such a model answers each request alone."""

    #: Images per U-Net pass, as DiffusionModel.sample chunks them.
    SAMPLE_BATCH = 1024

    def __init__(self, python_model: Any) -> None:
        self.generator = python_model.generator

    def metadata(self) -> dict[str, Any]:
        g = self.generator
        return {
            "kind": "image",
            "classes": list(g.class_names),
            "image_shape": [g.channels, g.image_size, g.image_size],
            "default_steps": g.spec.sample_steps,
            "default_guidance": g.spec.guidance_scale,
        }

    def parse(self, body: Any, max_items: int) -> Any:
        from genops.workloads.image.request import parse_image_request

        if not isinstance(body, dict):
            raise RequestError(f"body: expected a JSON object, got {type(body).__name__}")
        g = self.generator
        return parse_image_request(body, g.class_names, max_items, g.spec.timesteps)

    def _settings(self, request: Any) -> tuple[int, float]:
        s = self.generator.spec
        steps = s.sample_steps if request.steps is None else request.steps
        guidance = s.guidance_scale if request.guidance is None else request.guidance
        return int(steps), float(guidance)

    def batch_key(self, request: Any) -> Hashable | None:
        if float(self.generator.spec.eta) != 0.0 or not hasattr(self.generator, "_ddim"):
            return None
        return self._settings(request)

    def request_size(self, request: Any) -> int:
        return len(request.labels)

    def generate_batch(self, requests: Sequence[Any]) -> list[bytes | Exception]:
        if len(requests) == 1 or self.batch_key(requests[0]) is None:
            return super().generate_batch(requests)
        images = self._sample_together(requests)
        out: list[bytes | Exception] = []
        start = 0
        for request in requests:
            stop = start + len(request.labels)
            out.append(self.render(request, images[start:stop]))
            start = stop
        return out

    def _sample_together(self, requests: Sequence[Any]) -> np.ndarray:
        """DiffusionModel.sample over several requests of one key, each with its own noise."""
        import torch

        g = self.generator
        steps, guidance = self._settings(requests[0])
        if not 1 <= steps <= g.spec.timesteps or not math.isfinite(guidance) or guidance < 0:
            raise ValueError(f"steps {steps} or guidance {guidance} out of range")
        shape = (g.channels, g.image_size, g.image_size)
        noises = []
        for request in requests:
            gen = torch.Generator(device="cpu")
            seed = request.seed
            gen.manual_seed(int(seed) % 2**64 if seed is not None else secrets.randbits(63))
            noises.append(torch.randn((len(request.labels), *shape), generator=gen))
        labels = g._check_labels([label for r in requests for label in r.labels])
        x_init = torch.cat(noises)
        net = g._require_net()
        timesteps = g._timestep_sequence(steps)
        unused = torch.Generator(device="cpu")  # eta == 0: DDIM draws nothing
        chunks: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, labels.shape[0], self.SAMPLE_BATCH):
                y = torch.as_tensor(labels[start : start + self.SAMPLE_BATCH])
                x = x_init[start : start + self.SAMPLE_BATCH].to(g.device)
                out = g._ddim(net, x, y, timesteps, guidance, 0.0, unused)
                chunks.append(out.float().clamp(-1.0, 1.0).cpu().numpy())
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)

    def render(self, request: Any, images: np.ndarray) -> bytes:
        from genops.workloads.image.request import png_base64, to_unit

        g = self.generator
        out: dict[str, Any] = {
            "num_images": len(request.labels),
            "labels": [g.class_names[i] for i in request.labels],
            "shape": list(images.shape[1:]),
            "format": request.fmt,
        }
        if request.fmt == "png":
            out["images"] = [png_base64(img) for img in images]
        else:
            out["images"] = to_unit(images).round(5).tolist()
        return orjson.dumps(out)

    def generate(self, request: Any) -> bytes:
        g = self.generator
        images = g.sample(
            request.labels, steps=request.steps, guidance_scale=request.guidance, seed=request.seed
        )
        return self.render(request, images)


def image_smoke_test(
    url: str, shape: tuple[int, int, int], steps: int = 10, timeout: float = 120.0
) -> SmokeResult:
    """Health, the served classes from /metadata, then one image per class: the labels
    must come back in order and every PNG must decode to ``shape`` (C, H, W)."""
    from genops.workloads.image.request import decode_png

    try:
        health = httpx.get(f"{url}/health", timeout=timeout)
        if health.status_code != 200:
            return SmokeResult(False, f"/health answered {health.status_code}")
        meta = httpx.get(f"{url}/metadata", timeout=timeout).json()
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if not classes:
            return SmokeResult(False, "/metadata names no classes: not an image model")
        body = {"classes": classes, "steps": steps, "seed": 0, "format": "png"}
        reply = httpx.post(f"{url}/generate", json=body, timeout=timeout)
    except (httpx.HTTPError, ValueError) as exc:
        return SmokeResult(False, f"endpoint unreachable or not JSON: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"/generate answered {reply.status_code}: {reply.text[:300]}")
    try:
        answer = reply.json()
        labels, images = answer["labels"], answer["images"]
        shapes = {tuple(decode_png(img).shape) for img in images}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return SmokeResult(False, f"/generate answered an unexpected body: {exc}")
    if labels != classes or len(images) != len(classes):
        return SmokeResult(False, f"asked for {classes}, got labels {labels}")
    if shapes != {shape}:
        return SmokeResult(False, f"images decode to shapes {sorted(shapes)}, expected {shape}")
    return SmokeResult(True, f"{len(images)} images, one per class, each {shape} (C,H,W)")


def smoke_check(config: ImageRunConfig, endpoint: str) -> SmokeResult:
    """One image per class from the deployed endpoint: labels, count and PNG shape. Any
    error is a failed smoke test (which rolls the champion back), never a crashed step."""
    shape = (config.dataset.channels, config.dataset.image_size, config.dataset.image_size)
    steps = min(10, config.model.sample_steps)
    try:
        return image_smoke_test(endpoint, shape, steps=steps)
    except Exception as exc:  # the smoke test's verdict, not a pipeline failure
        return SmokeResult(False, f"smoke test error: {type(exc).__name__}: {exc}")
