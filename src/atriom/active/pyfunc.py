"""The MLflow pyfunc flavour of an exported model.

``mlflow.pyfunc.load_model(uri).predict(...)`` takes

* a DataFrame with a ``video`` column of file paths, or
* a NumPy array of frames, ``uint8 (T, H, W, 3)`` for one video or ``(N, T, H, W, 3)``,

and returns a DataFrame: one probability column per class plus ``label`` (the most likely
class). The atriom package travels with the model (``code_paths``), so the serving
environment needs only the pinned pip requirements, not this repository.
"""

import warnings

import mlflow.pyfunc

with warnings.catch_warnings():
    # MLflow asks for type hints to validate inputs; ours are paths *or* arrays, by design.
    warnings.simplefilter("ignore", UserWarning)

    class VideoClassifierModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            from atriom.active.inference import VideoClassifier

            self.classifier = VideoClassifier.load(context.artifacts["model"])

        def predict(self, context, model_input, params=None):
            import numpy as np
            import pandas as pd

            if isinstance(model_input, pd.DataFrame):
                if "video" not in model_input.columns:
                    raise ValueError("expected a DataFrame with a 'video' column of file paths")
                probabilities = self.classifier.predict_paths(list(model_input["video"]))
            else:
                frames = np.asarray(model_input)
                frames = frames[None] if frames.ndim == 4 else frames
                probabilities = np.stack([self.classifier.predict_frames(f) for f in frames])
            result = pd.DataFrame(probabilities, columns=self.classifier.labels)
            result["label"] = [self.classifier.labels[i] for i in probabilities.argmax(1)]
            return result
