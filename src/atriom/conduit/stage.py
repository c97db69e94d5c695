"""Conduit stage: splits, label map, clip index, stats and previews.

Reads the reservoir's dataset manifest; writes to ``paths.conduit``:
``label_map.json``, ``splits.json``, ``clip_index.json`` (per sample: which frames of which
file -- the fixed evaluation views, and for training the segment bounds the dataset draws
from -- plus the sampling, augmentation and frame-cache settings the dataset applies),
``stats.json`` (per-split class counts) and ``previews/`` (a contact sheet per split, a
class-balance chart). No frames are materialised: the dataset decodes them on the fly.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import OmegaConf

from atriom.artifacts import CLIP_INDEX, DATASET_MANIFEST, LABEL_MAP, read_output
from atriom.conduit.preview import class_balance_chart, contact_sheet
from atriom.conduit.sampling import eval_views
from atriom.conduit.splits import SPLITS, class_counts, split_clips
from atriom.io import write_json
from atriom.stage import StageContext

CLIP_INDEX_SCHEMA = "atriom.clip_index/2"


def index_rows(
    splits: Mapping[str, list], label_map: Mapping[str, int], sampler: dict
) -> list[dict]:
    rows: list[dict] = []
    for split in SPLITS:
        for clip in sorted(splits[split], key=lambda c: c["id"]):
            first, end = clip["first_frame"], clip["end_frame"]
            views = [[first + i for i in view] for view in eval_views(end - first, sampler)]
            rows.append(
                {
                    "id": len(rows),
                    "clip": clip["id"],
                    "split": split,
                    "path": clip["path"],
                    "sha256": clip["sha256"],
                    "label": clip["label"],
                    "label_id": label_map[clip["label"]],
                    "video_frames": clip["frames"],
                    "first_frame": first,
                    "end_frame": end,
                    "views": views,
                    "meta": clip.get("meta", {}),
                }
            )
    return rows


def run(ctx: StageContext) -> None:
    cfg = ctx.cfg.conduit
    dataset = read_output(ctx.phase_dir("reservoir"), DATASET_MANIFEST, "reservoir")
    clips = dataset["clips"]
    label_map = {label: index for index, label in enumerate(dataset["classes"])}
    splits = split_clips(clips, cfg.split.salt, cfg.split, cfg.split.group_by)
    sampler = OmegaConf.to_container(cfg.sampler, resolve=True)
    rows = index_rows(splits, label_map, sampler)

    counts = class_counts(splits)
    write_json(ctx.out / LABEL_MAP, label_map)
    write_json(ctx.out / "splits.json", {s: sorted(c["id"] for c in splits[s]) for s in SPLITS})
    write_json(
        ctx.out / CLIP_INDEX,
        {
            "schema": CLIP_INDEX_SCHEMA,
            "dataset_digest": dataset["digest"],
            "num_frames": sampler["num_frames"],
            "stride": sampler["stride"],
            "sampler": sampler,
            "augment": OmegaConf.to_container(cfg.augment, resolve=True),
            "frame_cache": OmegaConf.to_container(cfg.frame_cache, resolve=True),
            "samples": rows,
        },
    )
    stats = {"counts": counts, "totals": {s: len(splits[s]) for s in SPLITS}}
    write_json(ctx.out / "stats.json", stats)
    previews = ctx.out / "previews"
    for split in SPLITS:
        contact_sheet(
            ctx.root,
            splits[split],
            previews / f"contact_sheet_{split}.png",
            clips_per_class=cfg.preview.clips_per_class,
            frames=cfg.preview.frames,
            thumb=cfg.preview.thumb,
            title=f"{split}: {len(splits[split])} clips",
        )
    class_balance_chart(counts, dataset["classes"], previews / "class_balance.png")
    ctx.log.info(
        "splits: %s; %s sampling, %d eval view(s) per clip",
        ", ".join(f"{s}={len(splits[s])}" for s in SPLITS),
        sampler["train"],
        len(rows[0]["views"]) if rows else 0,
    )
    ctx.summary.update({"dataset_digest": dataset["digest"], "totals": stats["totals"]})
    ctx.artifacts += [LABEL_MAP, "splits.json", "stats.json", "previews"]
    ctx.run.log_metrics(
        {
            **{f"split.{s}.clips": len(splits[s]) for s in SPLITS},
            **{f"split.{s}.{label}": n for s in SPLITS for label, n in counts[s].items()},
        }
    )
    ctx.run.set_tags({"atriom.dataset.digest": dataset["digest"]})
