"""Cross-attention maps of the decoder's queries, in image pixels.

DETR's last decoder layer attends, for each object query, over the h x w
cells of the encoder memory; the paper (figure 6) shows these maps peak on
the object's extremities. ``predict_with_attention`` runs one image and
returns, for every kept prediction, the head-averaged attention of its
query mapped back onto the original image.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.structures import DetDataSample


def attention_to_image(weights: Tensor, feat_hw: Tuple[int, int], img_shape: Sequence[int],
                       pad_shape: Sequence[int], ori_shape: Sequence[int]) -> Tensor:
    """Map attention over feature cells onto the original image.

    Args:
        weights (Tensor): [k, h * w] attention of k queries over the cells of
            the (padded) feature map, row-major.
        feat_hw (tuple): (h, w) of the feature map.
        img_shape (tuple): (H, W) of the resized image inside the padded input.
        pad_shape (tuple): (H_pad, W_pad) of the padded network input.
        ori_shape (tuple): (H_ori, W_ori) of the original image.

    Returns:
        Tensor: [k, H_ori, W_ori] maps, each scaled to a maximum of 1 (bilinear
        upsampling of the cells, padding cropped away).
    """
    num = weights.shape[0]
    maps = weights.float().reshape(num, 1, *feat_hw)
    maps = F.interpolate(maps, size=tuple(pad_shape[:2]), mode='bilinear', align_corners=False)
    maps = maps[..., :img_shape[0], :img_shape[1]]  # drop the padding
    maps = F.interpolate(maps, size=tuple(ori_shape[:2]), mode='bilinear', align_corners=False)
    maps = maps[:, 0].clamp(min=0)
    peak = maps.flatten(1).max(1).values.clamp(min=1e-12)
    return maps / peak[:, None, None]


@torch.no_grad()
def predict_with_attention(model: torch.nn.Module, image: Union[str, np.ndarray]
                           ) -> Tuple[DetDataSample, Tensor]:
    """Predict one image and return each prediction's cross-attention map.

    Args:
        model: a ``PluginDETR`` from ``mmdet.apis.init_detector``.
        image: a path or a BGR ``np.ndarray``.

    Returns:
        tuple: the ``DetDataSample`` (``pred_instances`` with ``query_inds``)
        and maps [k, H_ori, W_ori], one per kept prediction, in order.
    """
    from mmdet.apis import inference_detector
    if not hasattr(model, 'decoder') or not hasattr(model.decoder, 'cross_attention_weights'):
        raise TypeError('attention maps need a PluginDETR with PluginDetrTransformerDecoder')
    feat_shape = {}

    def remember_shape(module, args, output):
        feat_shape['hw'] = tuple(output[-1].shape[-2:])

    handle = model.neck.register_forward_hook(remember_shape)
    model.decoder.cross_attention_weights(True)
    try:
        result = inference_detector(model, image)
        weights = model.decoder.layers[-1].cross_attn.last_weights[0]  # [N, h * w]
    finally:
        model.decoder.cross_attention_weights(False)
        handle.remove()
    pred = result.pred_instances
    if 'query_inds' not in pred:
        raise TypeError('attention maps need the plugin head (PluginDETRHead), which reports '
                        'the query of each prediction')
    meta = result.metainfo
    maps = attention_to_image(weights[pred.query_inds], feat_shape['hw'], meta['img_shape'],
                              meta.get('batch_input_shape', meta['img_shape']),
                              meta['ori_shape'])
    return result, maps
