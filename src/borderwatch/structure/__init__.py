"""The learned structure-change network: training data, network, training and inference.

:mod:`.data` reads the labelled pairs and building footprints of ``../shared/data``,
:mod:`.augment` samples augmented 0.5 m training patches (with synthetic pasted-building
pairs), :mod:`.net` and :mod:`.train` (the ``[train]`` extra, PyTorch) build, train and
export the network to ONNX, and :mod:`.infer` runs the ONNX model with onnxruntime in
the default install (the ``structure`` method, :mod:`borderwatch.methods.structure`).
"""
