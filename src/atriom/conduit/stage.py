"""Conduit stage: splits, label map, clip index, stats and previews.

Reads the reservoir's dataset manifest; writes to ``paths.conduit``:
``label_map.json``, ``splits.json``, ``clip_index.json`` (which frames of which file each
sample uses), ``stats.json`` and ``previews/contact_sheet_<split>.png``. No frames are
materialised: the Active phase decodes them on the fly.
"""

from __future__ import annotations

from atriom.conduit.preview import contact_sheet
from atriom.conduit.sampling import centred
from atriom.conduit.splits import SPLITS, class_counts, split_clips
from atriom.errors import UpstreamError
from atriom.io import read_json, write_json
from atriom.stage import StageContext

CLIP_INDEX = "clip_index.json"
LABEL_MAP = "label_map.json"


def run(ctx: StageContext) -> None:
    cfg = ctx.cfg.conduit
    dataset_path = ctx.phase_dir("reservoir") / "dataset.json"
    if not dataset_path.is_file():
        raise UpstreamError(f"{dataset_path} is missing: run `atriom run reservoir` first.")
    dataset = read_json(dataset_path)
    clips = dataset["clips"]
    label_map = {label: index for index, label in enumerate(dataset["classes"])}
    splits = split_clips(clips, cfg.split.salt, cfg.split)

    sampler = cfg.sampler
    index = []
    for split in SPLITS:
        for clip in sorted(splits[split], key=lambda c: c["path"]):
            index.append(
                {
                    "id": len(index),
                    "split": split,
                    "path": clip["path"],
                    "sha256": clip["sha256"],
                    "label": clip["label"],
                    "label_id": label_map[clip["label"]],
                    "video_frames": clip["frames"],
                    "frames": centred(clip["frames"], sampler.num_frames, sampler.stride),
                    "meta": clip.get("meta", {}),
                }
            )
    counts = class_counts(splits)
    write_json(ctx.out / LABEL_MAP, label_map)
    write_json(ctx.out / "splits.json", {s: sorted(c["path"] for c in splits[s]) for s in SPLITS})
    write_json(
        ctx.out / CLIP_INDEX,
        {
            "schema": "atriom.clip_index/1",
            "dataset_digest": dataset["digest"],
            "num_frames": sampler.num_frames,
            "stride": sampler.stride,
            "samples": index,
        },
    )
    stats = {"counts": counts, "totals": {s: len(splits[s]) for s in SPLITS}}
    write_json(ctx.out / "stats.json", stats)
    for split in SPLITS:
        contact_sheet(
            ctx.root,
            splits[split],
            ctx.out / "previews" / f"contact_sheet_{split}.png",
            clips_per_class=cfg.preview.clips_per_class,
            frames=cfg.preview.frames,
            thumb=cfg.preview.thumb,
            title=f"{split}: {len(splits[split])} clips",
        )
    ctx.log.info("splits: %s", ", ".join(f"{s}={len(splits[s])}" for s in SPLITS))
    ctx.summary.update({"dataset_digest": dataset["digest"], "totals": stats["totals"]})
    ctx.artifacts += [LABEL_MAP, "splits.json", "stats.json", "previews"]
    ctx.run.log_metrics({f"split.{s}.clips": len(splits[s]) for s in SPLITS})
