"""ATRIOM: Artifacts Transformation & Resources Interoperability in Machine Learning.

A reproducible, tracked video-learning pipeline in three phases:

* **Reservoir** gathers and validates what a run stands on (environment, resources,
  data, model),
* **Conduit** turns videos into splits, clip indices and on-the-fly datasets,
* **Active** fine-tunes with PEFT and emits deployable artifacts.

This module stays import-light on purpose: ``atriom --help`` must not pull in torch,
transformers, peft, mlflow or cv2.
"""

__version__ = "0.1.0"

PHASES = ("reservoir", "conduit", "active")

__all__ = ["PHASES", "__version__"]
