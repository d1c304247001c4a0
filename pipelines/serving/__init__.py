"""The served model: an MLflow pyfunc around ``glcf.detector.Detector`` and its request format."""
