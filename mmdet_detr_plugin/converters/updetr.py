"""Convert UP-DETR's pre-trained checkpoints (the reference release,
``up-detr-pre-training-60ep-imagenet.pth``) to the plugin.

The release's pre-training model is DETR of the original layout (pre-norm,
so with ``transformer.encoder.norm.*``) plus two heads, and a classifier of
3 rows: class 0 (never a target), class 1 ("patch") and no-object. In the
plugin (``PluginUPDETR`` + ``PluginPatchQueries`` + ``PluginUPDETRHead``,
``num_classes=1``)::

    release                               plugin
    DETR keys (see converters/original)   the same as for DETR
    class_embed.*  [3, d]                 bbox_head.fc_cls.*  [2, d]  (rows 1, 2)
    patch2query.*  [d, C]                 queries.patch2query.*
    feature_align.layers.{0,1}.*          bbox_head.feature_align.layers.{0,1}.*

``target='pretrain'`` gives all of it (strict load: pre-training continues);
``target='finetune'`` gives a ``PluginDETR`` start without the classifier
and the pre-training heads (load it with ``reset_classifier=True``). Going
back, row 0 of the classifier (which no target ever used) is written as
zeros with a bias that gives it probability zero.
"""
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from .original import _ABSENT_ID_BIAS, OriginalCheckpointError, convert_original, \
    plugin_to_original
from .rename import PARAM, RenameTable

# the pre-training heads: release names <-> plugin names
HEADS_TABLE = RenameTable(
    [('queries.patch2query.{p}', 'patch2query.{p}'),
     ('bbox_head.feature_align.layers.{i}.{p}', 'feature_align.layers.{i}.{p}')],
    placeholders=dict(i=r'\d+', p=PARAM))
# classifier rows of the release's pre-training model: class 0, patch, no-object
RELEASE_ROWS = 3
PATCH_ROWS = (1, 2)


def _split_heads(state_dict: Mapping[str, Tensor], table_side: str
                 ) -> Tuple['OrderedDict[str, Tensor]', 'OrderedDict[str, Tensor]']:
    """(the pre-training heads, the rest) of a state dict."""
    heads, rest = OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        renamed, unmatched = HEADS_TABLE.rename({key: value}, to=table_side)
        (rest if unmatched else heads)[key] = value
    return heads, rest


def updetr_to_plugin(state_dict: Mapping[str, Tensor], target: str = 'pretrain'
                     ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Release pre-training state dict -> plugin state dict.

    Args:
        state_dict (Mapping[str, Tensor]): the release file's ``model``.
        target (str): ``'pretrain'`` (``PluginUPDETR``, everything) or
            ``'finetune'`` (``PluginDETR``, no classifier and no heads).

    Returns:
        tuple: the state dict (tensors shared with the input) and the
        release keys left out (``finetune``: the classifier and the heads).

    Raises:
        OriginalCheckpointError: not a UP-DETR pre-training state dict (no
            heads, a classifier of other than 3 rows, or DETR keys missing
            or unexpected, all listed).
    """
    if target not in ('pretrain', 'finetune'):
        raise ValueError(f"target must be 'pretrain' or 'finetune', got {target!r}")
    heads, rest = _split_heads(state_dict, 'plugin')
    if 'patch2query.weight' not in heads or 'feature_align.layers.1.weight' not in heads:
        raise OriginalCheckpointError(
            'not a UP-DETR pre-training checkpoint: no patch2query / feature_align heads '
            '(a fine-tuned UP-DETR or DETR checkpoint converts with '
            'tools/model_converters/detr_original_to_plugin.py)')
    weight, bias = rest.get('class_embed.weight'), rest.get('class_embed.bias')
    if weight is None or weight.shape[0] != RELEASE_ROWS or bias.shape != (RELEASE_ROWS, ):
        shape = None if weight is None else list(weight.shape)
        raise OriginalCheckpointError(
            f'the classifier of a UP-DETR pre-training checkpoint has {RELEASE_ROWS} rows '
            f'(class 0, patch, no-object); class_embed.weight is {shape}')
    rows = torch.tensor(PATCH_ROWS)
    rest['class_embed.weight'], rest['class_embed.bias'] = weight[rows], bias[rows]
    out = convert_original(rest, num_classes=1, class_map=None).state_dict
    if target == 'finetune':
        for key in ('bbox_head.fc_cls.weight', 'bbox_head.fc_cls.bias'):
            del out[key]
        return out, ['class_embed.weight', 'class_embed.bias'] + list(heads)
    renamed, _ = HEADS_TABLE.rename(heads, to='plugin')
    out.update(renamed)
    return out, []


def plugin_to_updetr(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``PluginUPDETR`` state dict (ResNet backbone, pre-norm) -> the release's
    pre-training layout (class 0's row written as zeros, bias -1e4)."""
    heads, rest = _split_heads(state_dict, 'other')
    if not heads:
        raise OriginalCheckpointError('not a PluginUPDETR state dict: no '
                                      'queries.patch2query / bbox_head.feature_align keys')
    out = plugin_to_original(rest, class_map=None)
    weight, bias = out['class_embed.weight'], out['class_embed.bias']
    if weight.shape[0] != len(PATCH_ROWS):
        raise OriginalCheckpointError(f'expected a 2-row classifier (patch, no-object), got '
                                      f'{list(weight.shape)}')
    full_weight = weight.new_zeros((RELEASE_ROWS, weight.shape[1]))
    full_bias = bias.new_full((RELEASE_ROWS, ), _ABSENT_ID_BIAS)
    full_weight[list(PATCH_ROWS)], full_bias[list(PATCH_ROWS)] = weight, bias
    out['class_embed.weight'], out['class_embed.bias'] = full_weight, full_bias
    renamed, _ = HEADS_TABLE.rename(heads, to='other')
    out.update(renamed)
    return out


def release_heads(state_dict: Dict[str, Tensor]) -> List[str]:
    """The release keys of UP-DETR's pre-training heads in ``state_dict``."""
    return list(_split_heads(state_dict, 'plugin')[0])
