"""Train, validate and export the structure-change network (PyTorch: the ``[train]`` extra).

:func:`train_structure` reads the training data (:mod:`borderwatch.structure.data`),
holds out whole places (``holdout`` groups: every record of the place, e.g. LEVIR
tile ``test_2`` and its two sample crops), trains :class:`~borderwatch.structure.net.UNet`
on augmented batches (:class:`~borderwatch.structure.augment.PatchSampler`) with
BCE + Dice loss and a one-cycle AdamW schedule (:func:`one_cycle_lr`, annealed by
the share of steps or of the wall-clock budget done, whichever is larger), seeded and
on CPU unless a GPU is at hand, prints the pixel F1 of the held-out places
at 0.5 and exports the network (with its sigmoid) to ONNX with its metadata
(:data:`borderwatch.structure.infer.META_KEYS`). :func:`write_model_card` writes the
card beside the weights: every training file with its SHA-256, the command, the
metrics and the weights' hash.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from borderwatch.errors import InputError
from borderwatch.structure.augment import KIND_WEIGHTS, PatchSampler
from borderwatch.structure.data import (
    ChangePair,
    Footprints,
    file_manifest,
    held_groups,
    read_change_pairs,
    read_footprints,
    synthetic_pairs,
)
from borderwatch.structure.net import WIDTHS, UNet, WithSigmoid, n_parameters
from borderwatch.structure.prep import MODEL_PIXEL_M, date_moments, stack_input

__all__ = [
    "LICENCES",
    "TrainConfig",
    "export_onnx",
    "one_cycle_lr",
    "predict_pair",
    "train_structure",
    "write_model_card",
]

#: Licence of each dataset as stated in ``../shared/data/README.txt``.
LICENCES = {
    "levir_cd_samples": "LEVIR-CD: no licence stated; research/academic use (Google Earth imagery)",
    "levir_cd_tiles": "LEVIR-CD: no licence stated; research/academic use (Google Earth imagery)",
    "dsifn_cd_samples": "DSIFN-CD: no licence stated; research use (Google Earth imagery)",
    "xbd_samples": "xBD: CC BY-NC-SA 4.0 (non-commercial)",
    "ida_bd_samples": "Ida-BD: no licence stated; research/non-commercial (Maxar-class imagery)",
    "spacenet7_samples": "SpaceNet 7: CC BY-SA 4.0",
    "inria_buildings_samples": "Inria Aerial Image Labeling: public domain imagery and footprints",
    "whu_building_samples": "WHU building: no explicit licence; research use",
    "spacenet_buildings_samples": "SpaceNet 1/2: CC BY-SA 4.0",
    "crowdai_samples": "crowdAI Mapping Challenge: AIcrowd terms (CC BY-NC-SA 4.0, unverified)",
    "loveda_rural_samples": "LoveDA: CC BY-NC-SA 4.0 (non-commercial)",
    "myanmar_uav_buildings_samples": "no licence stated",
    "shanghai_building_height_samples": "no licence stated; Google Maps imagery, research use",
}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (all recorded in the model card).

    Attributes
    ----------
    data : str
        Data root (``../shared/data``).
    holdout : tuple of str
        Groups (places) never trained on; the held-out change pairs are validated.
    change, stable, footprints : tuple of str
        Dataset keys (:data:`~borderwatch.structure.data.CHANGE_DATASETS`,
        :data:`~borderwatch.structure.data.FOOTPRINT_DATASETS`); ``stable`` pairs have
        no new construction. SpaceNet 7 (``spacenet7``) is not in the default: at about
        4 m its buildings are a few pixels, blobs without texture once resampled to
        0.5 m. DSIFN (``dsifn``) neither: its labels are general land-cover change.
    synthetic : int
        Rendered scenes (:func:`~borderwatch.structure.data.synthetic_pairs`) in the mix.
    steps, batch, size : int
        Optimiser steps, patches per step, patch side in 0.5 m pixels.
    lr : float
        Peak learning rate of the one-cycle schedule.
    seed : int
        Seed of NumPy and PyTorch.
    threads : int
        PyTorch CPU threads.
    time_budget_s : float or None
        Stop training after this many seconds of wall clock.
    widths : tuple of int
        U-Net channels per level.
    weights : dict
        Share of each kind of example (:data:`~borderwatch.structure.augment.KIND_WEIGHTS`).
    """

    data: str
    holdout: tuple[str, ...] = ("levir/test_2",)
    change: tuple[str, ...] = ("levir_samples", "levir_tiles")
    stable: tuple[str, ...] = ("xbd_harvey", "xbd_guatemala", "ida_bd")
    footprints: tuple[str, ...] = (
        "inria",
        "whu",
        "spacenet",
        "crowdai",
        "loveda",
        "myanmar",
        "shanghai",
    )
    synthetic: int = 30
    steps: int = 600
    batch: int = 8
    size: int = 128
    lr: float = 3e-3
    seed: int = 0
    threads: int = 2
    time_budget_s: float | None = None
    widths: tuple[int, ...] = WIDTHS
    weights: dict[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))


def one_cycle_lr(progress: float, peak: float) -> float:
    """Learning rate at ``progress`` (0-1) of the run: 10 % linear warm-up, cosine decay.

    Progress is the larger of the share of steps and of the time budget done, so a run
    stopped by its budget has still annealed (it then depends on the machine's speed;
    the record states the steps done).
    """
    if progress < 0.1:
        return peak * (0.04 + 0.96 * progress / 0.1)
    return peak * (0.5 * (1 + np.cos(np.pi * (progress - 0.1) / 0.9)) + 1e-3)


def _dice_bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * y).sum()
    dice = 1 - (2 * inter + 1) / (p.sum() + y.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, y) + dice


def predict_pair(net: UNet, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Change probability ``float32 (rows, cols)`` of a whole 0.5 m pair (per-date moments).

    The input is padded by reflection to the network's multiple and cropped back.
    """
    x = stack_input(before, after, (date_moments(before), date_moments(after)))
    rows, cols = x.shape[1:]
    m = net.multiple
    pr, pc = (-rows) % m, (-cols) % m
    x = np.pad(x, ((0, 0), (0, pr), (0, pc)), mode="reflect")
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x[None]))
    return torch.sigmoid(logits)[0, 0, :rows, :cols].numpy()


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _validate(net: UNet, pairs: Sequence[ChangePair]) -> dict[str, object]:
    per: dict[str, float] = {}
    tp = fp = fn = 0
    flagged = total = 0
    for p in pairs:
        pred = predict_pair(net, p.before, p.after) >= 0.5
        a, b, c = int((pred & p.new).sum()), int((pred & ~p.new).sum()), int((~pred & p.new).sum())
        tp, fp, fn = tp + a, fp + b, fn + c
        flagged, total = flagged + int(pred.sum()), total + pred.size
        per[p.name] = round(_f1(a, b, c), 4)
    return {
        "pooled_f1": round(_f1(tp, fp, fn), 4),
        "per_pair_f1": per,
        "flagged_share": round(flagged / max(total, 1), 5),
    }


def _split(
    cfg: TrainConfig,
) -> tuple[
    list[ChangePair],
    list[ChangePair],
    list[Footprints],
    list[ChangePair],
    list[ChangePair | Footprints],
]:
    root = Path(cfg.data)
    if not (root / "README.txt").exists():
        raise InputError(f"{root}: not the training data folder (no README.txt)")
    change = read_change_pairs(root, cfg.change)
    stable = read_change_pairs(root, cfg.stable)
    feet = read_footprints(root, cfg.footprints)
    records = [*change, *stable, *feet]
    held = held_groups(cfg.holdout, {r.group for r in records})
    train_c = [p for p in change if p.group not in held]
    train_s = [p for p in stable if p.group not in held]
    train_f = [f for f in feet if f.group not in held]
    val = [p for p in [*change, *stable] if p.group in held]
    tiles = {p.group for p in val if p.dataset == "levir_cd_tiles"}
    val = [p for p in val if not (p.dataset == "levir_cd_samples" and p.group in tiles)]
    used: list[ChangePair | Footprints] = [*train_c, *train_s, *train_f]
    return train_c, train_s, train_f, val, used


def weights_to_int8(proto: Any) -> Any:
    """Store every float weight of an ONNX graph as int8 with a per-output-channel scale.

    Each weight becomes ``DequantizeLinear(q, scale, 0, axis=0)``: the network still
    computes in float32 on constant weights, so (unlike dynamic quantization, whose
    activation scales follow each block's values) every block gets the same answer.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    keep, nodes = [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim < 2:
            keep.append(init)
            continue
        flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127)
        names = [f"{init.name}_q", f"{init.name}_scale", f"{init.name}_zero"]
        keep += [
            numpy_helper.from_array(q.astype(np.int8), names[0]),
            numpy_helper.from_array(scale, names[1]),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), names[2]),
        ]
        nodes.append(helper.make_node("DequantizeLinear", names, [init.name], axis=0))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    onnx.checker.check_model(proto)
    return proto


def export_onnx(net: UNet, path: Path, *, metadata: dict[str, str], quantize: bool = True) -> str:
    """Write the network with its sigmoid to ONNX (dynamic batch, rows, cols); its SHA-256.

    With ``quantize`` the weights are stored as 8-bit integers (:func:`weights_to_int8`):
    a quarter of the size.
    """
    import onnx

    model = WithSigmoid(net).eval()
    m = net.multiple
    dummy = torch.zeros(1, 6, 2 * m, 2 * m)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["probability"],
        dynamic_axes={
            "input": {0: "n", 2: "rows", 3: "cols"},
            "probability": {0: "n", 2: "rows", 3: "cols"},
        },
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    for k, v in {**metadata, "input_multiple": str(m)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    if quantize:
        proto = weights_to_int8(proto)
    onnx.save(proto, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_structure(
    cfg: TrainConfig,
    out: Path,
    *,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Train, validate and export; write ``out`` (ONNX) and ``out.with_suffix('.json')``.

    Returns
    -------
    dict
        The training record (config, data manifest, metrics, weights' SHA-256).

    Raises
    ------
    InputError
        Missing data, unknown dataset keys or hold-out groups.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_c, train_s, train_f, val, used = _split(cfg)
    log(
        f"data: {len(train_c)} change pairs, {len(train_s)} stable pairs, {len(train_f)} "
        f"footprint images, {cfg.synthetic} rendered scenes; held out {list(cfg.holdout)} "
        f"({len(val)} validation pairs)"
    )
    synth = synthetic_pairs(cfg.synthetic)
    sampler = PatchSampler(
        train_c, train_s, train_f, size=cfg.size, weights=dict(cfg.weights), synthetic=synth
    )
    net = UNet(widths=cfg.widths).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    t0 = time.monotonic()
    done, losses = 0, []
    for step in range(cfg.steps):
        progress = step / cfg.steps
        if cfg.time_budget_s is not None:
            progress = max(progress, (time.monotonic() - t0) / cfg.time_budget_s)
        if progress >= 1:
            log(f"time budget {cfg.time_budget_s:.0f} s reached after {step} of {cfg.steps} steps")
            break
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(progress, cfg.lr)
        net.train()
        x, y = sampler.batch(rng, cfg.batch)
        loss = _dice_bce(net(torch.from_numpy(x).to(device)), torch.from_numpy(y).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if done % 25 == 0 or done == cfg.steps:
            log(
                f"step {done}/{cfg.steps}  loss {np.mean(losses[-25:]):.4f}  "
                f"lr {one_cycle_lr(progress, cfg.lr):.2e}  {time.monotonic() - t0:.0f} s"
            )
    seconds = time.monotonic() - t0
    net = net.cpu()
    metrics = _validate(net, val) if val else {}
    if metrics:
        log(
            f"validation (held out {', '.join(cfg.holdout)}): pixel F1 "
            f"{metrics['pooled_f1']:.3f} at probability 0.5 {metrics['per_pair_f1']}"
        )
    meta = {
        "borderwatch_structure": "1",
        "band_roles": "red,green,blue",
        "pixel_m": str(MODEL_PIXEL_M),
        "trained_on_holdout_excluded": ",".join(cfg.holdout),
    }
    sha = export_onnx(net, out, metadata=meta)
    record: dict[str, object] = {
        "weights": out.name,
        "weights_sha256": sha,
        "command": command,
        "config": asdict(cfg),
        "parameters": n_parameters(net),
        "steps_done": done,
        "train_seconds": round(seconds, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "validation": metrics,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "data_files": file_manifest(Path(cfg.data), used),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {out} (sha256 {sha}, {n_parameters(net)} parameters, {seconds:.0f} s)")
    return record


def write_model_card(record: dict[str, object], path: Path, *, extra: str = "") -> None:
    """Write ``MODEL_CARD.md`` from a training record (plus ``extra`` Markdown)."""
    cfg = record["config"]
    assert isinstance(cfg, dict)
    files = record["data_files"]
    assert isinstance(files, list)
    folders = sorted({f["path"].split("/", 1)[0] for f in files})
    val = record.get("validation")
    if not isinstance(val, dict):
        val = {}
    lines = [
        f"# Model card: {record['weights']}",
        "",
        "Early-fusion U-Net (PyTorch, exported to ONNX with its sigmoid) giving the probability",
        "of a new structure between two RGB dates at 0.5 m "
        f"({record['parameters']:,} parameters, widths {cfg['widths']}).",
        "",
        f"- weights SHA-256: `{record['weights_sha256']}`",
        f"- command: `{record['command']}`",
        f"- trained {record['steps_done']} of {cfg['steps']} steps x {cfg['batch']} patches of "
        f"{cfg['size']} px in {record['train_seconds']} s on CPU "
        f"({cfg['threads']} threads; torch {record['torch']}, Python {record['python']})",
        f"- seed {cfg['seed']}, peak learning rate {cfg['lr']}, example shares {cfg['weights']}",
        f"- rendered scenes of `borderwatch.synthetic.make_pair` in the mix: "
        f"{cfg.get('synthetic', 0)} (seeds from 1000 on; generated, no file)",
    ]
    if cfg["holdout"]:
        lines += [
            f"- held out (never trained on): {', '.join(cfg['holdout'])}",
            f"- validation on the held-out place, pixel F1 at 0.5: {val.get('pooled_f1')} "
            f"(per pair {val.get('per_pair_f1')})",
        ]
    else:
        lines.append(
            "- held out: nothing (trained on every file below); held-out figures come from "
            "models trained the same way without the place or dataset scored"
        )
    lines += [
        "",
        "## Training data licences",
        "",
        *(f"- `{d}`: {LICENCES.get(d, 'see README.txt')}" for d in folders),
        "",
        "The weights inherit the most restrictive of these: research and non-commercial use.",
        "",
    ]
    if extra:
        lines += [extra.rstrip(), ""]
    lines += [
        f"## Training files ({len(files)}, paths under ../shared/data)",
        "",
        "| path | SHA-256 |",
        "| --- | --- |",
        *(f"| `{f['path']}` | `{f['sha256']}` |" for f in files),
        "",
    ]
    path.write_text("\n".join(lines))


def _main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - thin wrapper
    """``python -m borderwatch.structure.train``: see ``borderwatch train --structure``."""
    from borderwatch.cli.train_cmd import train

    train.main(args=["--structure", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    _main()
