"""Inference: calibration and batched prediction, the anomaly maps and scores they compute (scoring,
smoothing, normalisation statistics), and the ready-to-use :class:`~glcf.inference.detector.Detector`."""

from __future__ import annotations

from glcf.inference.predict import Calibration, Prediction, calibrate, iter_predictions, predict

__all__ = ["Calibration", "Prediction", "calibrate", "iter_predictions", "predict"]
