"""The served model: an MLflow pyfunc around ``glcf.inference.detector.Detector`` and its request format."""
