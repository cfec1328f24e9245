"""Running an exported DETR with ONNX Runtime.

* :class:`ONNXRuntimeDETR`: the graph of ``PluginDETRExport`` in an ONNX
  Runtime session, on numpy arrays (no torch needed to call it).
* :class:`PluginONNXRuntimeDetector`: the same session as an mmengine
  model, registered in mmdet's ``MODELS``. It takes the config's
  ``DetDataPreprocessor`` batches (stacked and padded, not normalised: the
  graph normalises) and returns ``DetDataSample`` s with ``pred_instances``
  in the original image's pixels, so mmdet's evaluators, visualiser and
  ``inference_detector`` work on it as on the PyTorch model
  (``tools/test.py --backend onnxruntime``, ``tools/demo.py --backend
  onnxruntime``).
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

INSTALL_HINT = 'pip install onnx onnxscript onnxruntime (the plugin\'s "deploy" extra)'
METADATA_KEY = 'mmdet_detr_plugin'  # the ONNX metadata entry written at export


def import_onnxruntime():
    """onnxruntime, or an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f'onnxruntime is not installed ({e}); {INSTALL_HINT}') from None
    return onnxruntime


class ONNXRuntimeDETR:
    """An exported DETR (``tools/deployment/pytorch2onnx.py``) in an ONNX
    Runtime session.

    Args:
        onnx_file (str): the exported model.
        num_threads (int, optional): ONNX Runtime's intra-op threads.
            Defaults to its own choice (the machine's cores).
        providers (list[str], optional): execution providers. Defaults to
            ``['CPUExecutionProvider']``.
    """

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None) -> None:
        ort = import_onnxruntime()
        if not osp.isfile(onnx_file):
            raise FileNotFoundError(f'ONNX model not found: {onnx_file}')
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(
            onnx_file, sess_options=options,
            providers=list(providers or ['CPUExecutionProvider']))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        if self.input_names != ['images', 'img_sizes']:
            raise ValueError(f'{onnx_file} takes inputs {self.input_names}; a model exported '
                             'by tools/deployment/pytorch2onnx.py takes images, img_sizes')
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata: Dict = json.loads(meta) if meta else {}

    @property
    def raw(self) -> bool:
        """Whether the model returns raw logits and boxes (``--raw``)."""
        return self.output_names[0] == 'cls_logits'

    def __call__(self, images: np.ndarray, img_sizes: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the graph.

        Args:
            images (np.ndarray): float32 [B, 3, H, W], loader's channel
                order and 0-255 values, images top-left, padded.
            img_sizes (np.ndarray): int64 [B, 2], the valid (h, w) of each.

        Returns:
            dict[str, np.ndarray]: the outputs by name (``boxes`` [B, k, 4]
            xyxy input pixels, ``scores`` [B, k], ``labels`` [B, k]; or
            ``cls_logits``, ``boxes`` with ``raw``).
        """
        feeds = dict(images=np.ascontiguousarray(images, dtype=np.float32),
                     img_sizes=np.ascontiguousarray(img_sizes, dtype=np.int64))
        return dict(zip(self.output_names, self.session.run(None, feeds)))


@MODELS.register_module()
class PluginONNXRuntimeDetector(BaseModel):
    """An exported DETR as a test-time mmengine model.

    Args:
        onnx_file (str): the exported model (post-processed outputs).
        data_preprocessor (dict): a ``DetDataPreprocessor`` that stacks and
            pads without normalising (:func:`onnxruntime_model_cfg` derives it
            from the PyTorch model's).
        num_threads (int, optional): ONNX Runtime's intra-op threads.
        init_cfg: unused (there are no parameters).
    """

    def __init__(self, onnx_file: str, data_preprocessor: Optional[dict] = None,
                 num_threads: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.runner = ONNXRuntimeDETR(onnx_file, num_threads=num_threads)
        if self.runner.raw:
            raise ValueError(f'{onnx_file} was exported with --raw (logits, no '
                             'post-processing); export it without --raw to evaluate it')
        self.onnx_file = onnx_file

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'predict') -> Union[List[DetDataSample], dict]:
        """``mode='predict'`` only: inputs [B, 3, H, W] as the preprocessor
        padded them, ``data_samples`` with ``img_shape`` and
        ``scale_factor``."""
        if mode != 'predict':
            raise ValueError(f'{type(self).__name__} runs an exported graph: mode={mode!r} is '
                             'not available (only predict; train the PyTorch model)')
        if data_samples is None:
            raise ValueError('PluginONNXRuntimeDetector needs data_samples (image sizes)')
        sizes = np.array([s.img_shape[:2] for s in data_samples], dtype=np.int64)
        outs = self.runner(inputs.detach().cpu().float().numpy(), sizes)
        for b, sample in enumerate(data_samples):
            boxes = torch.from_numpy(outs['boxes'][b])
            scale = boxes.new_tensor(sample.metainfo.get('scale_factor', (1., 1.))).repeat(2)
            sample.pred_instances = InstanceData(
                bboxes=boxes / scale, scores=torch.from_numpy(outs['scores'][b]),
                labels=torch.from_numpy(outs['labels'][b]))
        return data_samples


def onnxruntime_model_cfg(model_cfg: dict, onnx_file: str,
                          num_threads: Optional[int] = None) -> dict:
    """The config of a :class:`PluginONNXRuntimeDetector` that replaces the
    PyTorch ``model_cfg``: its data preprocessor without normalisation and
    channel swap (the graph does both), same padding."""
    pre = dict(model_cfg.get('data_preprocessor') or dict(type='DetDataPreprocessor'))
    pre.pop('mean', None)
    pre.pop('std', None)
    pre.pop('batch_augments', None)
    pre['bgr_to_rgb'] = False
    pre['rgb_to_bgr'] = False
    pre['pad_value'] = 0
    cfg = dict(type='PluginONNXRuntimeDetector', onnx_file=onnx_file, data_preprocessor=pre)
    if num_threads:
        cfg['num_threads'] = num_threads
    return cfg
