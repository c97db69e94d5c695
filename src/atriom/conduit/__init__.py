"""Conduit: from videos to a stream a model can eat.

Public API for other phases: :mod:`atriom.conduit.dataset` (``ClipDataset``),
:mod:`atriom.conduit.sampling` and the files this stage writes (``clip_index.json``,
``label_map.json``); the rest is internal.
"""
