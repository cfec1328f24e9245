"""The plugin's DETR as one traceable graph, for ONNX export.

:class:`PluginDETRExport` wraps a built :class:`PluginDETR` (in
``accel='reference'``, the plain computation) into a module whose only
inputs are tensors:

* ``images`` float32 [B, 3, H, W]: the batch as the config's test pipeline
  loads and resizes it (pixel values 0-255 in the loader's channel order,
  BGR for mmcv's), each image in the top-left corner, padded to a common
  H x W with any value;
* ``img_sizes`` int64 [B, 2]: each image's valid (h, w) inside the padding.

The graph does what mmdet's ``DetDataPreprocessor`` and ``PluginDETR.predict``
do: channel swap, mean / std normalisation, zero padding, backbone, the
padding mask (nearest-resized to the feature map, as
``PluginDETR.pre_transformer``), sine positions, encoder, decoder on the
test-time queries, head, and DETR's post-processing (softmax with the
no-object class dropped, or sigmoid for focal-loss heads; best class per
query; top ``test_cfg.max_per_img`` queries by score). Outputs:

* ``boxes`` float32 [B, k, 4]: xyxy in pixels of the input (of the resized
  image inside the padding; divide by the resize factor for the original);
* ``scores`` float32 [B, k] in descending order; ``labels`` int64 [B, k].

With ``raw=True`` the outputs are the last decoder layer's ``cls_logits``
[B, N, K + 1] and ``boxes`` [B, N, 4] (normalised cxcywh, relative to each
image's valid size) instead.

The padding mask keeps the padding out of the attention, but the backbone's
convolutions still see it near the border of each image, as in PyTorch: a
padded batch gives PyTorch's detections for that padded batch (to float
rounding), and close to, not exactly, those of each image alone.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..structures.box_ops import box_cxcywh_to_xyxy

# the detector's parts, in the order the graph runs them (attribute names)
PARTS = ('backbone', 'neck', 'positional_encoding', 'encoder', 'queries', 'decoder',
         'bbox_head')


class PluginDETRExport(nn.Module):
    """``(images, img_sizes) -> (boxes, scores, labels)`` for a PluginDETR.

    Args:
        detector (PluginDETR): in eval mode, built with ``accel='reference'``.
        raw (bool): return logits and normalised boxes of every query
            instead of the post-processed top-k. Defaults to False.
    """

    def __init__(self, detector: nn.Module, raw: bool = False) -> None:
        super().__init__()
        check_exportable(detector)
        self.detector = detector
        self.raw = raw
        pre = detector.data_preprocessor
        if getattr(pre, '_enable_normalize', False):
            mean, std = pre.mean.reshape(1, -1, 1, 1), pre.std.reshape(1, -1, 1, 1)
        else:
            mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
        self.register_buffer('mean', mean.float().clone(), persistent=False)
        self.register_buffer('std', std.float().clone(), persistent=False)
        self.swap_channels = bool(getattr(pre, '_channel_conversion', False))
        num_queries = detector.queries.num_queries
        max_per_img = detector.bbox_head.test_cfg.get('max_per_img', num_queries)
        self.max_per_img = min(max_per_img, num_queries)

    def forward(self, images: Tensor, img_sizes: Tensor) -> Tuple[Tensor, ...]:
        """See the module's docstring for the inputs and outputs."""
        det = self.detector
        height, width = images.shape[-2:]
        if self.swap_channels:
            images = images.flip(1)  # BGR <-> RGB
        x = (images - self.mean) / self.std
        # [B, H, W]: True inside each image, False on its padding
        rows = torch.arange(height, device=images.device)
        cols = torch.arange(width, device=images.device)
        valid = ((rows[None, :, None] < img_sizes[:, 0, None, None])
                 & (cols[None, None, :] < img_sizes[:, 1, None, None]))
        x = x * valid[:, None].to(x.dtype)  # DetDataPreprocessor pads with 0

        feat = det.extract_feat(x)[-1]  # [B, d, h, w]
        masks = F.interpolate((~valid)[:, None].to(feat.dtype),
                              size=feat.shape[-2:]).to(torch.bool)[:, 0]  # [B, h, w]
        pos = det.positional_encoding(masks)
        encoder_inputs, decoder_inputs = det.encoder_inputs(feat, masks, pos)
        memory = det.forward_encoder(**encoder_inputs)['memory']
        query_inputs, head_inputs = det.pre_decoder(memory, None)
        decoder_inputs.update(query_inputs)
        hidden_states = det.forward_decoder(**decoder_inputs)['hidden_states']
        cls_scores, bbox_preds = det.bbox_head(hidden_states[-1],
                                               head_inputs.get('references'))  # [B, N, *]
        if self.raw:
            return cls_scores, bbox_preds
        return self.postprocess(cls_scores, bbox_preds, img_sizes)

    def postprocess(self, cls_scores: Tensor, bbox_preds: Tensor,
                    img_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``PluginDETRHead.predict_by_feat`` without the rescale: logits
        [B, N, K + 1] and normalised cxcywh [B, N, 4] -> boxes [B, k, 4] xyxy
        in input pixels, scores [B, k], labels [B, k]."""
        head = self.detector.bbox_head
        if head.use_sigmoid_cls:
            probs = cls_scores[..., :head.num_classes].sigmoid()
        else:
            probs = cls_scores.softmax(-1)[..., :-1]
        scores, labels = probs.max(-1)  # [B, N]
        scores, keep = scores.topk(self.max_per_img, dim=1)  # [B, k]
        labels = labels.gather(1, keep)
        boxes = box_cxcywh_to_xyxy(bbox_preds.gather(1, keep[..., None].expand(-1, -1, 4)))
        size = img_sizes.flip(1).repeat(1, 2)[:, None].to(boxes.dtype)  # [B, 1, 4] w h w h
        boxes = torch.minimum((boxes * size).clamp(min=0), size)
        return boxes, scores, labels

    @property
    def output_names(self) -> List[str]:
        return ['cls_logits', 'boxes'] if self.raw else ['boxes', 'scores', 'labels']


def check_exportable(detector: nn.Module) -> None:
    """Refuse, naming the part, what the graph cannot hold.

    Raises:
        TypeError: a detector other than the plugin's box DETR (UP-DETR's
            pre-training, the panoptic model) or a part without the
            interface the graph calls.
    """
    from ..models.dense_heads.detr_head import PluginDETRHead
    from ..models.detectors.detr import PluginDETR
    name = type(detector).__name__
    if not isinstance(detector, PluginDETR):
        raise TypeError(f'model.type={name} cannot be exported: only PluginDETR (boxes) is')
    head = detector.bbox_head
    if not isinstance(head, PluginDETRHead) or type(head).predict is not PluginDETRHead.predict:
        raise TypeError(
            f'model.bbox_head (type={type(head).__name__}) cannot be exported: the graph '
            'holds PluginDETRHead\'s box post-processing only (masks, UP-DETR\'s '
            'pre-training outputs and other heads are not in it)')
    if type(detector).forward_transformer is not PluginDETR.forward_transformer:
        raise TypeError(f'model.type={name} cannot be exported: its forward_transformer '
                        'differs from PluginDETR\'s, which the graph follows')
    if getattr(detector.queries, 'takes_proposals', False):
        raise TypeError(f'model.queries ({type(detector.queries).__name__}) cannot be exported: '
                        'its queries start from model.encoder_head\'s proposals, which the '
                        'graph does not hold yet')


def locate_failure(detector: nn.Module, images: Tensor, img_sizes: Tensor,
                   export_fn) -> Optional[Tuple[str, BaseException]]:
    """Find which part of the detector ``export_fn`` cannot export.

    Runs the wrapper once eagerly to record each part's inputs, then
    exports the parts one at a time, in the order the graph runs them.

    Args:
        detector (PluginDETR): the detector.
        images, img_sizes: sample inputs of :class:`PluginDETRExport`.
        export_fn (callable): ``export_fn(module, args, kwargs)``, raising
            when ``module`` cannot be exported.

    Returns:
        tuple | None: ``('model.<part>', error)`` for the first part that
        fails, None when each exports alone.
    """
    recorded: Dict[str, Tuple[tuple, dict]] = {}
    handles = []
    for part in PARTS:
        module = getattr(detector, part, None)
        if isinstance(module, nn.Module):
            def hook(mod, args, kwargs, part=part):
                recorded.setdefault(part, (args, kwargs))
            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            PluginDETRExport(detector)(images, img_sizes)
    finally:
        for h in handles:
            h.remove()
    for part in PARTS:
        if part not in recorded:
            continue
        args, kwargs = recorded[part]
        try:
            export_fn(getattr(detector, part), args, kwargs)
        except Exception as e:  # noqa: B902 (any exporter error names the part)
            return f'model.{part}', e
    return None


def sample_inputs(img_scale: Sequence[int], batch_size: int = 2) -> Tuple[Tensor, Tensor]:
    """A padded batch for tracing: ``batch_size`` images of (h, w) =
    ``img_scale`` where the second and later are smaller, so the padding
    path is in the trace. Returns ``images`` [B, 3, H, W], ``img_sizes``
    [B, 2] int64."""
    height, width = int(img_scale[0]), int(img_scale[1])
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 3, height, width, generator=generator) * 255
    sizes = [(height, width)] + [(max(height * 3 // 4, 1), max(width * 2 // 3, 1))
                                 for _ in range(batch_size - 1)]
    return images, torch.tensor(sizes, dtype=torch.int64)


def require_exporter() -> None:
    """The ONNX exporter's packages, or one ImportError naming them."""
    missing = []
    for name in ('onnx', 'onnxscript'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        from .onnxruntime import INSTALL_HINT
        raise ImportError(f'ONNX export needs {" and ".join(missing)}, not installed; '
                          f'{INSTALL_HINT}')


def export_onnx(wrapper: PluginDETRExport, out_file: str, images: Tensor, img_sizes: Tensor,
                opset: int = 18, dynamic: bool = True,
                metadata: Optional[Dict[str, str]] = None) -> None:
    """Export ``wrapper`` with torch's exporter (``dynamo=True``).

    Args:
        wrapper (PluginDETRExport): in eval mode.
        out_file (str): where the ``.onnx`` goes.
        images, img_sizes: sample inputs (:func:`sample_inputs`).
        opset (int): ONNX opset. Defaults to 18.
        dynamic (bool): batch size, height and width dynamic; otherwise
            fixed to the sample's. Defaults to True.
        metadata (dict[str, str], optional): stored in the model's
            ``metadata_props``.

    Raises:
        RuntimeError: naming the detector's part that cannot be exported
            (``model.backbone``, ...) when the export fails.
    """
    require_exporter()
    import onnx
    kwargs = dict(input_names=['images', 'img_sizes'], output_names=wrapper.output_names,
                  dynamo=True, opset_version=opset, verbose=False)
    if dynamic:
        batch = torch.export.Dim('batch', min=1, max=1024)
        height = torch.export.Dim('height', min=16, max=8192)
        width = torch.export.Dim('width', min=16, max=8192)
        kwargs['dynamic_shapes'] = {'images': {0: batch, 2: height, 3: width},
                                    'img_sizes': {0: batch}}
    try:
        with torch.no_grad():
            torch.onnx.export(wrapper, (images, img_sizes), out_file, **kwargs)
    except Exception as err:  # noqa: B902 (name the part, keep the exporter's error)
        failure = locate_failure(wrapper.detector, images, img_sizes, _export_part)
        if failure is None:
            raise RuntimeError(f'ONNX export failed ({type(err).__name__}: '
                               f'{_first_line(err)})') from err
        part, part_err = failure
        module = getattr(wrapper.detector, part.split('.', 1)[1])
        raise RuntimeError(
            f'{part} (type={type(module).__name__}) cannot be exported to ONNX: '
            f'{type(part_err).__name__}: {_first_line(part_err)}') from err
    if metadata:
        model = onnx.load(out_file)
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, out_file)


def _export_part(module: nn.Module, args: tuple, kwargs: dict) -> None:
    import io
    with torch.no_grad():
        torch.onnx.export(module, args, io.BytesIO(), kwargs=kwargs, dynamo=True,
                          verbose=False)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ''
