"""Convert checkpoints of the original DETR release (facebookresearch/detr).

The release's models (DETR R50/R101, their DC5 variants, UP-DETR fine-tuned
models) compute what ``PluginDETR`` computes with mmdet's ``ResNet``; only the
names differ (:data:`RELEASE_TABLE`, ``coder`` ``encoder`` or ``decoder``),
plus the class rows of the classifier::

    release                                           plugin
    backbone.0.body.*  (torchvision ResNet)           backbone.*  (mmdet ResNet)
    backbone.1.{row,col}_embed.weight  (learned)      positional_encoding.{row,col}_embed.weight
    input_proj.*                                      neck.proj.*
    transformer.coder.layers.i.linear{1,2}.*          coder.layers.i.ffn.linear{1,2}.*
    transformer.decoder.layers.i.multihead_attn.*     decoder.layers.i.cross_attn.*
    transformer.coder.layers.i.self_attn.*            coder.layers.i.self_attn.*
    transformer.coder.layers.i.norm{1,2,3}.*          coder.layers.i.norm{1,2,3}.*
    transformer.coder.norm.*  (encoder: pre-norm)     coder.norm.*
    query_embed.weight  [N, d]                        queries.embedding.weight
    class_embed.*  [92, d]  (ids 0..90, no-object)    bbox_head.fc_cls.*  [81, d]  (see class_map)
    bbox_embed.layers.i.*                             bbox_head.bbox_mlp.i.*

The release's frozen batch norm keeps no ``num_batches_tracked``; mmdet's
``ResNet`` does, so zeros are added (they only count training steps). Dilation
(DC5) and the depth (R50/R101) do not change names: pick the matching config.
Caveat for DC5: torchvision leaves the first block of the dilated stage at
dilation 1 (``layer4.0.conv2``) while mmdet's ``ResNet(dilations=(1, 1, 1, 2))``
dilates every block, so DC5 weights load but that one convolution differs
unless the backbone is made to match.
UP-DETR's pretraining heads (``patch2query.*``, ``feature_align.*``) have no
counterpart and are dropped (reported). Panoptic checkpoints (``detr.*``,
``bbox_attention.*``, ``mask_head.*``) are refused: ``PluginDETR`` has no mask
head yet, and keeping only their box part would turn the queries trained on
the 53 stuff classes into spurious thing detections.
"""
import argparse
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .original_arch import OriginalArch, expected_keys, infer_arch
from .rename import ATTN_PARAM, PARAM, RenameTable

# The 80 category ids of COCO 2017, as listed under "categories" in the
# annotation files (instances_{train,val}2017.json), sorted. mmdet's
# CocoDataset maps them in this order to its contiguous labels 0..79
# (CocoDataset.METAINFO['classes']); the release's classifier row i is
# category id i (rows of unused ids, 0 included, are "N/A").
COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90)
# release classifier on COCO: one row per id 0..90, then the no-object row
RELEASE_COCO_ROWS = max(COCO_CATEGORY_IDS) + 2
# Bias of the "N/A" rows written by plugin_to_original: softmax gives them an
# exact zero, so the exported model scores exactly as the plugin's.
_ABSENT_ID_BIAS = -1e4
# Keys listed one by one in an error; past this, summed up by model part.
_MAX_LISTED = 30
_PART = re.compile(r'^(backbone\.\d+\.body|backbone\.\d+|transformer\.\w+|[^.]+)')

RELEASE_TABLE = RenameTable(
    [
        ('backbone.{tail}', 'backbone.0.body.{tail}'),
        ('positional_encoding.{rc}_embed.weight', 'backbone.1.{rc}_embed.weight'),
        ('neck.proj.{p}', 'input_proj.{p}'),
        ('{coder}.layers.{i}.ffn.{linear}.{p}', 'transformer.{coder}.layers.{i}.{linear}.{p}'),
        ('decoder.layers.{i}.cross_attn.{attn_p}',
         'transformer.decoder.layers.{i}.multihead_attn.{attn_p}'),
        ('{coder}.layers.{i}.self_attn.{attn_p}',
         'transformer.{coder}.layers.{i}.self_attn.{attn_p}'),
        ('{coder}.layers.{i}.{norm}.{p}', 'transformer.{coder}.layers.{i}.{norm}.{p}'),
        ('{coder}.norm.{p}', 'transformer.{coder}.norm.{p}'),
        ('queries.embedding.weight', 'query_embed.weight'),
        ('bbox_head.fc_cls.{p}', 'class_embed.{p}'),
        ('bbox_head.bbox_mlp.{i}.{p}', 'bbox_embed.layers.{i}.{p}'),
    ],
    placeholders=dict(coder=r'(?:en|de)coder', i=r'\d+', rc=r'row|col', linear=r'linear[12]',
                      norm=r'norm[123]', p=PARAM, attn_p=ATTN_PARAM, tail=r'.+'))
# UP-DETR's pretraining heads (random query patches): unused by a detector
_DROPPED = re.compile(r'^(patch2query|feature_align)\.')
_PANOPTIC = re.compile(r'^(detr\.|bbox_attention\.|mask_head\.)')


class OriginalCheckpointError(ValueError):
    """A state dict that is not (or not all of) a DETR of the release's layout."""


@dataclass
class OriginalConversion:
    """Result of :func:`convert_original`.

    Attributes:
        state_dict (OrderedDict[str, Tensor]): in the plugin's names.
        arch (OriginalArch): what the checkpoint holds.
        dropped (list[str]): release keys without a counterpart (UP-DETR).
        coco_mapped (bool): the 92 COCO-id rows became 80 labels + no-object.
    """
    state_dict: 'OrderedDict[str, Tensor]'
    arch: OriginalArch
    dropped: List[str] = field(default_factory=list)
    coco_mapped: bool = False


def _listed(what: str, items: List[str]) -> str:
    """All items, or, past ``_MAX_LISTED``, a line per part of the model
    (count and first keys) so a wholly wrong layout stays readable."""
    if len(items) <= _MAX_LISTED:
        return f'\n  {len(items)} {what}: ' + ', '.join(items)
    parts: Dict[str, List[str]] = OrderedDict()
    for item in items:
        parts.setdefault(_PART.match(item).group(1), []).append(item)
    lines = [f'\n    {part} ({len(keys)}): ' + ', '.join(keys[:2])
             + (', ...' if len(keys) > 2 else '') for part, keys in parts.items()]
    return f'\n  {len(items)} {what}, by part:' + ''.join(lines)


def _raise(problem: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
           shapes: Sequence[str] = (), hint: str = '') -> NoReturn:
    """Raise one :class:`OriginalCheckpointError` listing every problem."""
    msg = problem
    if missing:
        msg += _listed('missing key(s)', list(missing))
    if unexpected:
        msg += _listed('unexpected key(s)', list(unexpected))
    if shapes:
        msg += _listed('shape mismatch(es)', list(shapes))
    raise OriginalCheckpointError(msg + (f'\n  hint: {hint}' if hint else ''))


def _class_rows(weight: Tensor, bias: Tensor, num_classes: int,
                class_map: Optional[str]) -> Tuple[Tensor, Tensor, bool]:
    """Release classifier [R, d], [R] -> plugin's [num_classes + 1, d], [num_classes + 1]."""
    rows = weight.shape[0]
    if bias.shape != (rows, ):
        _raise('the classifier is inconsistent', shapes=[
            f'class_embed.bias {list(bias.shape)}: expected [{rows}] as class_embed.weight'])
    if class_map == 'coco' and rows == RELEASE_COCO_ROWS and num_classes == len(COCO_CATEGORY_IDS):
        index = torch.tensor(COCO_CATEGORY_IDS + (rows - 1, ))  # 80 ids, then no-object
        return weight[index], bias[index], True
    if rows == num_classes + 1:  # already one row per label, no-object last
        return weight, bias, False
    if rows == RELEASE_COCO_ROWS:
        why = (f"class_map='coco' maps these rows (91 COCO ids + no-object) to "
               f'{len(COCO_CATEGORY_IDS)} classes, but num_classes={num_classes}'
               if class_map == 'coco' else
               f'expected {num_classes + 1} rows (num_classes={num_classes} + no-object)')
        hint = ("the release's COCO classifier: use class_map='coco' with num_classes=80, "
                'or num_classes=91 to keep the category ids as labels')
    else:
        why = f'expected {num_classes + 1} rows (num_classes={num_classes} + no-object)'
        hint = ('a checkpoint fine-tuned on K classes has K + 1 rows: set num_classes=K; '
                'a UP-DETR pre-training checkpoint (3 rows: class 0, patch, no-object) '
                'converts with tools/model_converters/updetr_convert.py')
    _raise('the classifier does not fit the model',
           shapes=[f'class_embed.weight {list(weight.shape)}: {why}'], hint=hint)


def convert_original(state_dict: Mapping[str, Tensor], num_classes: int = 80,
                     class_map: Optional[str] = 'coco',
                     reference: Optional[Mapping[str, Tensor]] = None) -> OriginalConversion:
    """Release state dict -> ``PluginDETR`` state dict, checked, with a report.

    Steps: 1. refuse panoptic models; 2. set UP-DETR's heads aside; 3. check
    the keys against those of the architecture the names describe; 4. map
    the classifier rows; 5. rename by :data:`RELEASE_TABLE`, adding a zero
    ``num_batches_tracked`` after each backbone batch norm; 6. check against
    ``reference`` if given.

    Args:
        state_dict (Mapping[str, Tensor]): the release checkpoint's ``model``.
        num_classes (int): K of the target model (``bbox_head.num_classes``).
            Defaults to 80.
        class_map (str, optional): ``'coco'``: a 92-row classifier (row i =
            COCO category id i, row 91 = no-object) becomes 81 rows, those of
            :data:`COCO_CATEGORY_IDS` then no-object (mmdet's COCO labels).
            None, or any classifier with K + 1 rows: rows kept as they are.
            Defaults to ``'coco'``.
        reference (Mapping[str, Tensor], optional): the target model's state
            dict; the result must then match its keys and shapes exactly
            (catches what names cannot tell, e.g. fewer decoder layers).

    Returns:
        OriginalConversion: ``state_dict`` (tensors shared with the input,
        ``num_batches_tracked`` added), ``arch``, ``dropped`` keys,
        ``coco_mapped``.

    Raises:
        OriginalCheckpointError: one error listing every missing, unexpected
            and mis-shaped key (a partial or non-release state dict, a
            panoptic model, a classifier fitting neither 92 nor K + 1 rows).
    """
    if class_map not in ('coco', None):
        raise ValueError(f"class_map must be 'coco' or None, got {class_map!r}")
    keys = list(state_dict)
    # 1. panoptic models
    panoptic = [k for k in keys if _PANOPTIC.match(k)]
    if panoptic:
        _raise('panoptic DETR checkpoints are not supported yet: PluginDETR has no mask head',
               unexpected=panoptic)
    # 2. UP-DETR's pretraining heads
    dropped = [k for k in keys if _DROPPED.match(k)]
    # 3. every key of the architecture, and no other; num_batches_tracked are
    # optional: the release's frozen batch norm has none
    kept = [k for k in keys if k not in dropped and not k.endswith('.num_batches_tracked')]
    arch = infer_arch(kept)
    expected = expected_keys(arch)
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        looks_converted = any(k.startswith(('queries.', 'query_embedding.', 'neck.',
                                            'bbox_head.')) for k in keys)
        _raise('not a complete DETR state dict of the original release layout', missing,
               unexpected, hint='this looks like an mmdet or PluginDETR state dict: load it '
               'directly, or convert with tools/model_converters/mmdet_detr_convert.py'
               if looks_converted else '')
    # 4. classifier rows
    fc_weight, fc_bias = state_dict['class_embed.weight'], state_dict['class_embed.bias']
    fc_weight, fc_bias, coco_mapped = _class_rows(fc_weight, fc_bias, num_classes, class_map)
    # 5. names
    renamed, unmatched = RELEASE_TABLE.rename(
        OrderedDict((k, state_dict[k]) for k in keys if k not in dropped), to='plugin')
    if unmatched:  # only a stray num_batches_tracked outside the backbone gets here
        _raise('not a DETR state dict of the original release layout', unexpected=unmatched)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in renamed.items():
        out[key] = value
        if key.startswith('backbone.') and key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in renamed and (reference is None or counter in reference):
                out[counter] = torch.tensor(0, dtype=torch.long)
    out['bbox_head.fc_cls.weight'], out['bbox_head.fc_cls.bias'] = fc_weight, fc_bias
    # 6. the target model
    if reference is not None:
        shapes = [f'{k} {list(v.shape)} (model: {list(reference[k].shape)})'
                  for k, v in out.items() if k in reference and v.shape != reference[k].shape]
        missing = [k for k in reference if k not in out]
        unexpected = [k for k in out if k not in reference]
        if missing or unexpected or shapes:
            _raise(f'the checkpoint ({arch.describe()}) does not fit the model (plugin names)',
                   missing, unexpected, shapes)
    return OriginalConversion(out, arch, dropped, coco_mapped)


def original_to_plugin(state_dict: Mapping[str, Tensor], num_classes: int = 80,
                       class_map: Optional[str] = 'coco',
                       reference: Optional[Mapping[str, Tensor]] = None
                       ) -> 'OrderedDict[str, Tensor]':
    """Release state dict -> ``PluginDETR`` state dict; warns about dropped keys.

    See :func:`convert_original` for the arguments and errors.
    """
    result = convert_original(state_dict, num_classes, class_map, reference)
    if result.dropped:
        warnings.warn(f'dropped {len(result.dropped)} key(s) without a counterpart in '
                      f'PluginDETR (UP-DETR pretraining heads): {", ".join(result.dropped)}')
    return result.state_dict


def plugin_to_original(state_dict: Mapping[str, Tensor],
                       class_map: Optional[str] = 'coco') -> 'OrderedDict[str, Tensor]':
    """``PluginDETR`` state dict (mmdet ``ResNet`` backbone) -> release layout.

    ``num_batches_tracked`` counters are dropped. With ``class_map='coco'``
    the 81 classifier rows go back to the release's 92: rows of the 80 COCO
    ids and the no-object row, the 11 unused ids filled with zero weights and
    a bias giving them zero probability, so the exported model scores as the
    plugin's (the release's own values of these rows are not recoverable).

    Args:
        state_dict (Mapping[str, Tensor]): a ``PluginDETR`` state dict.
        class_map (str, optional): ``'coco'`` (81 rows -> 92) or None (rows
            kept). Defaults to ``'coco'``.

    Returns:
        OrderedDict[str, Tensor]: the release's names (tensors shared, except
        the remapped classifier).

    Raises:
        OriginalCheckpointError: keys without a release counterpart, or an
            incomplete result, listed in one error.
    """
    if class_map not in ('coco', None):
        raise ValueError(f"class_map must be 'coco' or None, got {class_map!r}")
    out, unknown = RELEASE_TABLE.rename(
        OrderedDict((k, v) for k, v in state_dict.items()
                    if not k.endswith('.num_batches_tracked')), to='other')
    missing = [k for k in expected_keys(infer_arch(list(out))) if k not in out]
    if unknown or missing:
        _raise('not a PluginDETR state dict the release layout can hold (a ResNet backbone, '
               'plain learned queries)', missing, unknown)
    if class_map == 'coco':
        weight, bias = out['class_embed.weight'], out['class_embed.bias']
        if weight.shape[0] != len(COCO_CATEGORY_IDS) + 1:
            _raise("class_map='coco' needs the 80 COCO classes", shapes=[
                f'bbox_head.fc_cls.weight {list(weight.shape)}: expected '
                f'{len(COCO_CATEGORY_IDS) + 1} rows'])
        index = torch.tensor(COCO_CATEGORY_IDS + (RELEASE_COCO_ROWS - 1, ))
        full_weight = weight.new_zeros((RELEASE_COCO_ROWS, weight.shape[1]))
        full_bias = bias.new_full((RELEASE_COCO_ROWS, ), _ABSENT_ID_BIAS)
        full_weight[index], full_bias[index] = weight, bias
        out['class_embed.weight'], out['class_embed.bias'] = full_weight, full_bias
    return out


def load_release_file(path: str) -> Tuple[Dict[str, Tensor], Dict[str, object]]:
    """Read a release ``.pth`` with torch's weights-only loader.

    The release files hold ``model`` (the state dict) and, in some, ``args``
    (an ``argparse.Namespace`` of the training options), ``optimizer``,
    ``epoch``... Weights-only loading refuses the ``Namespace``; that one
    class is allowed for this load only, nothing else (weights-only stays on).

    Args:
        path (str): the checkpoint file.

    Returns:
        tuple[dict, dict]: the state dict (``model`` entry, or the file's
        content if it is a bare state dict) and the other entries.
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises UnpicklingError for refused globals
        if 'argparse.Namespace' not in str(err):
            raise
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(ckpt, dict):
        raise OriginalCheckpointError(f'{path}: expected a dict, got {type(ckpt).__name__}')
    if 'model' in ckpt and isinstance(ckpt['model'], dict):
        return ckpt['model'], {k: v for k, v in ckpt.items() if k != 'model'}
    if all(isinstance(v, Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise OriginalCheckpointError(
        f'{path}: no "model" entry (entries: {", ".join(map(str, ckpt))}); '
        'the release files keep their state dict under "model"')
