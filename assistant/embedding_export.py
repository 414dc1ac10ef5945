"""Make, find and check the ONNX export of the embedding model: `python -m assistant.embedding_export`.

The run time embeds with onnxruntime and `tokenizers` only; torch is needed here,
once, to make the export from the packaged model (nothing is downloaded). The
export is fp32: dynamic int8 quantisation (onnxruntime's `quantize_dynamic`, what
sentence-transformers' `export_dynamic_quantized_onnx_model` runs through optimum)
was measured at mean cosine 0.993 with the fp32 model (minimum 0.974) on the eval
texts, short of the 0.999 the answers need, even with only the feed-forward
MatMuls quantised (mean 0.9976). See README.md, "Benchmarks".

Why not sentence-transformers' own exporter: its `backend="onnx"` needs optimum-onnx,
whose releases pin transformers below the 5.x this project runs. PyTorch's own
exporter (`torch.onnx.export`, the TorchScript path, which is also what optimum uses
for BERT models) makes the same graph; the export is checked against the
sentence-transformers model before it is used.

Layout: `<cache>/onnx/<key>/{model.onnx, tokenizer.json, export.json}`, where `key`
hashes the model's small files, the weights' size and the exporter version, and
`export.json` (written last) marks a complete export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from assistant import _offline  # noqa: F401
from assistant.errors import BackendError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
OPSET = 17
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "export.json"
# cosine with the sentence-transformers model an export must reach on every probe text
MIN_COSINE = 0.9999
PROBES = (
    "why does my back hurt on incline?",
    "Walking on a treadmill with poor posture puts a lot of force on the low back.",
    "bird dog",
    "I can't feel my legs and I peed myself",
    " ".join(["Keep your core engaged and your shoulders back while you walk uphill."] * 30),
)
_SMALL_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def export_key(model_path: Path) -> str:
    """Cheap identity of a model folder (no hashing of the weights), so the run time can find its export."""
    h = hashlib.sha256(f"export-v{EXPORT_VERSION}|opset{OPSET}".encode())
    for name in _SMALL_FILES:
        f = model_path / name
        h.update(name.encode())
        h.update(f.read_bytes() if f.is_file() else b"-")
    for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("*.bin")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return h.hexdigest()[:16]


def export_dir(model_path: Path, cache_dir: Path) -> Path:
    return Path(cache_dir) / "onnx" / export_key(Path(model_path))


def find_export(model_path: Path, cache_dir: Path) -> Path | None:
    """The folder of a complete export of this model, or None."""
    folder = export_dir(model_path, cache_dir)
    complete = all((folder / f).is_file() for f in (ONNX_FILE, TOKENIZER_FILE, META_FILE))
    return folder if complete else None


def onnx_supported(model_path: Path) -> str | None:
    """Why this model cannot run on the ONNX path (None when it can): BERT-like, mean pooling."""
    try:
        modules = json.loads((model_path / "modules.json").read_text(encoding="utf-8"))
        pooling = json.loads((model_path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"cannot read its sentence-transformers config ({exc})"
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Normalize",) for k in kinds[2:]):
        return f"its modules are {kinds}, not Transformer + Pooling (+ Normalize)"
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        return f"it pools with {modes}, not mean pooling"
    if not (model_path / TOKENIZER_FILE).is_file():
        return f"it has no {TOKENIZER_FILE}"
    return None


def max_seq_length(model_path: Path) -> int:
    """Tokens the model reads per text (sentence-transformers truncates there)."""
    try:
        cfg = json.loads((model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(cfg.get("max_seq_length") or 256)
    except (OSError, ValueError):
        return 256


def export_onnx(model_path: Path, cache_dir: Path, *, force: bool = False) -> Path:
    """Export the model to ONNX under `cache_dir` (once; a complete export is reused) and return its folder.

    Raises:
        BackendError: the model cannot be exported, or the export does not match
            the sentence-transformers model on the probe texts.
    """
    from filelock import FileLock

    model_path = Path(model_path)
    why_not = onnx_supported(model_path)
    if why_not:
        raise BackendError(f"The model at {model_path} cannot run on onnxruntime: {why_not}.")
    dest = export_dir(model_path, cache_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / ".lock"), timeout=900):
        if not force and find_export(model_path, cache_dir):
            return dest
        tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            meta = _export(model_path, tmp)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"Exporting the embedding model to ONNX failed: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("ONNX export of the embedding model written to %s", dest)
    return dest


def _export(model_path: Path, folder: Path) -> dict[str, Any]:
    import numpy as np
    import onnxruntime
    import torch
    from transformers import AutoModel

    started = time.perf_counter()
    # eager attention traces to plain MatMul/Softmax that onnxruntime fuses; SDPA traces branches
    bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    dummy = torch.ones((2, 8), dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python branches the check below covers
        torch.onnx.export(
            LastHiddenState(bert),
            (dummy, dummy, torch.zeros_like(dummy)),
            str(folder / ONNX_FILE),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, as optimum does for BERT
            external_data=False,
        )
    shutil.copyfile(model_path / TOKENIZER_FILE, folder / TOKENIZER_FILE)

    from assistant.embeddings import OnnxEncoder, TorchEncoder

    reference = TorchEncoder(model_path).encode(list(PROBES), batch_size=8)
    got = OnnxEncoder(folder, max_seq_length(model_path)).encode(list(PROBES), batch_size=8)
    cosine = float(np.min(np.sum(reference * got, axis=1)))
    if cosine < MIN_COSINE:
        raise BackendError(
            f"The ONNX export differs from the model: cosine {cosine:.5f} on a probe text, "
            f"need >= {MIN_COSINE}."
        )
    weights = sorted(model_path.glob("*.safetensors"))
    return {
        "source": str(model_path),
        "weights_sha256": {w.name: _sha256(w) for w in weights},
        "exporter": f"torch.onnx.export (TorchScript), opset {OPSET}",
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "precision": "fp32",
        "probe_min_cosine": round(cosine, 7),
        "seconds": round(time.perf_counter() - started, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    """Make the export for the configured model (run by `make setup`)."""
    from assistant.config import Settings
    from assistant.embeddings import default_model_path

    settings = Settings.load()
    model_path = Path(settings.model_path) if settings.model_path else default_model_path()
    if settings.embedding_backend != "onnx":
        print("ASSISTANT_EMBEDDING_BACKEND is not onnx: no export needed.")
        return
    existing = find_export(model_path, settings.cache_dir)
    folder = existing or export_onnx(model_path, settings.cache_dir)
    print(f"ONNX export of the embedding model: {folder}{' (already there)' if existing else ''}")


if __name__ == "__main__":
    main()
