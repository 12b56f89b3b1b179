"""ONNX Runtime for the transformer encoders of the routers (``encoder_runtime``).

A router's encoder forward pass is almost all of its cost (issue 20: ~21 MFLOP per
token for MiniLM-L6). ``encoder_runtime: onnx`` exports that pass -- the tokens in,
the router's pooled features or head logits out -- with ``torch.onnx.export`` once,
and runs it with ONNX Runtime: full graph optimisation (attention and layer-norm
fusion), fp32, one intra-op thread per usable core (``threads`` where the router has it),
no spinning. Decisions do not change (fp32 to
~1e-6; checked by tests/test_fast_routers.py and benchmarks/router_overhead.py).
``onnx-int8`` adds ONNX Runtime's dynamic int8 quantisation of the weights: faster,
but it changes some picks; the benchmark prints how many.

One implementation for every caller: the routers load their session in
``_load_weights``, so ``codyn serve``, ``codyn route`` and the pipeline's predict stage
all run it when the router's params say so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.io import atomic_path

log = logging.getLogger(__name__)
RUNTIMES = ("torch", "onnx", "onnx-int8")
OPSET = 17


def check_runtime(runtime: str, where: str | Path | None = None) -> str:
    if runtime not in RUNTIMES:
        raise InputError(
            f"encoder_runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}",
            path=where,
            field="encoder_runtime",
        )
    return runtime


def onnx_file_name(runtime: str) -> str:
    return "encoder.onnx" if runtime == "onnx" else f"encoder-{runtime.split('-', 1)[1]}.onnx"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _graph(forward: Callable, names: list[str], module):
    import torch

    class Graph(torch.nn.Module):
        """``forward(*tensors)`` by the tokenizer's input names, for the tracer; ``module``
        holds the weights, registered so the tracer exports them as initialisers."""

        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *tensors):
            return forward(dict(zip(names, tensors, strict=True)))

    return Graph().eval()


def export(forward: Callable, module, tokenizer, path: Path, runtime: str = "onnx") -> Path:
    """Trace ``forward(encoded batch) -> (batch, k) tensor`` (weights in the torch
    ``module``) into ``path`` (atomic).

    Batch size and sequence length stay dynamic. ``onnx-int8`` quantises the exported
    fp32 graph's weights to int8 (dynamic quantisation, activations stay fp32).
    """
    check_runtime(runtime, path)
    sample = tokenizer(
        ["def add(a, b):\n    return a + b", "sort a list"], padding=True, return_tensors="pt"
    )
    names = list(sample.keys())
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["out"] = {0: "batch"}
    graph = _graph(forward, names, module)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fp32 = Path(f"{tmp}.fp32.onnx") if runtime != "onnx" else Path(tmp)
        try:
            _trace(graph, sample, names, axes, fp32)
            if runtime == "onnx-int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        finally:
            if fp32 != Path(tmp):
                fp32.unlink(missing_ok=True)
    log.info("exported the encoder to %s (%s)", path, runtime)
    return path


def _trace(graph, sample, names, axes, out: Path) -> None:
    import torch

    with torch.no_grad():
        torch.onnx.export(
            graph,
            tuple(sample[n] for n in names),
            str(out),
            input_names=names,
            output_names=["out"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


class OnnxEncoder:
    """``encoder(texts) -> (n, k) float32`` through an exported graph."""

    def __init__(self, path: Path, tokenizer, max_length: int | None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise InputError(
                "ONNX encoder missing (encoder_runtime needs the exported graph)", path=path
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # No busy-waiting between ops: on a few cores shared with the server's event loop
        # and tokenisation (or other jobs), spinning threads steal the time they wait for.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InputError(
                f"damaged ONNX encoder, ONNX Runtime cannot load it ({type(exc).__name__}: "
                f"{str(exc)[:200]})",
                path=path,
            ) from None
        self.path = path
        self.names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = tokenizer
        self.max_length = max_length

    def tokenize(self, texts: list[str]) -> list[dict[str, list[int]]]:
        enc = self.tokenizer(
            list(texts), truncation=self.max_length is not None, max_length=self.max_length
        )
        return [{n: enc[n][i] for n in self.names} for i in range(len(texts))]

    def run(self, rows: list[dict[str, list[int]]]) -> np.ndarray:
        """One padded batch (attention_mask pads with 0, everything else with the pad id)."""
        width = max(len(r[self.names[0]]) for r in rows)
        feeds = {}
        for n in self.names:
            fill = self.tokenizer.pad_token_id if n == "input_ids" else 0
            batch = np.full((len(rows), width), fill, dtype=np.int64)
            for i, r in enumerate(rows):
                batch[i, : len(r[n])] = r[n]
            feeds[n] = batch
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)

    def __call__(self, texts: list[str], batch_size: int = 32, waste: float = 0.15) -> np.ndarray:
        """Scores of ``texts``, in micro-batches of similar length: padding a batch to its
        longest prompt spends FLOPs on pad tokens (HumanEval: 43 to 256 tokens, ~44% padding),
        so a batch grows only while its padded tokens stay within ``waste`` of its real ones."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        rows = self.tokenize(texts)
        length = [len(r[self.names[0]]) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: length[i])
        out: list[np.ndarray | None] = [None] * len(rows)
        group: list[int] = []
        for i in order + [None]:
            full = len(group) >= batch_size
            if group and (i is None or full or length[i] * (len(group) + 1) >
                          (1 + waste) * (sum(length[j] for j in group) + length[i])):  # fmt: skip
                for j, row in zip(group, self.run([rows[j] for j in group]), strict=True):
                    out[j] = row
                group = []
            if i is not None:
                group.append(i)
        return np.vstack(out)
