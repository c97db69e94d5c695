"""MLflow "models from code" entry: MLflow runs this file to build the pyfunc model.

Logging a file instead of a pickled object means loading the model never unpickles code.
"""

import mlflow

from atriom.active.pyfunc import VideoClassifierModel

mlflow.models.set_model(VideoClassifierModel())
