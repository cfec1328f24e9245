"""Leaving PyTorch: the plugin's DETR as an ONNX graph (``export.py``) and
that graph in ONNX Runtime (``onnxruntime.py``). ``onnx``, ``onnxscript`` and
``onnxruntime`` are imported only when used."""
from .export import PluginDETRExport, check_exportable, export_onnx, sample_inputs
from .onnxruntime import ONNXRuntimeDETR, PluginONNXRuntimeDetector, onnxruntime_model_cfg

__all__ = ['PluginDETRExport', 'check_exportable', 'export_onnx', 'sample_inputs',
           'ONNXRuntimeDETR', 'PluginONNXRuntimeDetector', 'onnxruntime_model_cfg']
