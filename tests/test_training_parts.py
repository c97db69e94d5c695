import numpy as np
import pytest

from atriom.active.metrics import classification_metrics, confusion_matrix
from atriom.active.train import EarlyStopping


def test_confusion_and_metrics():
    matrix = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = classification_metrics(matrix, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "support": 2}
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_class_never_predicted_has_zero_precision():
    m = classification_metrics(confusion_matrix([0, 1], [0, 0], 2), ["a", "b"])
    assert m["per_class"]["b"]["precision"] == 0.0


def test_early_stopping_max_with_patience_and_delta():
    stop = EarlyStopping(mode="max", patience=2, min_delta=0.01)
    assert stop.update(0.5, 0)
    assert not stop.update(0.505, 1)  # within min_delta: not an improvement
    assert not stop.should_stop
    assert not stop.update(0.4, 2)
    assert stop.should_stop and stop.best_epoch == 0


def test_early_stopping_min_resets_on_improvement():
    stop = EarlyStopping(mode="min", patience=2, min_delta=0.0)
    stop.update(1.0, 0)
    stop.update(1.1, 1)
    assert stop.update(0.9, 2)
    assert stop.bad_epochs == 0 and stop.best == 0.9 and stop.best_epoch == 2
