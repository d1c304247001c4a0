"""Export: the whole detector as one ONNX or OpenVINO graph (:mod:`~glcf.export.graph`, needs torch) and
running such a file without torch (:mod:`~glcf.export.run`). Nothing is imported here, so the
torch-free path stays torch-free."""
