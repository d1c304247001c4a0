"""What serving needs without torch: a detection and image decoding (:mod:`~glcf.serving.detection`), and
the request checks and answer rows shared by the MLflow pyfunc and the onnxruntime server
(:mod:`~glcf.serving.requests`). Nothing is imported here."""
