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
counterpart and are dropped (reported).

Panoptic checkpoints (the release's ``DETRsegm``: detr-r50-panoptic,
detr-r50-dc5-panoptic, detr-r101-panoptic) hold the box model above under
``detr.`` and add two mask parts (:data:`MASK_TABLE`); they convert into the
plugin's panoptic model (``PluginDETRPanoptic``, head
``PluginDETRPanopticHead``)::

    detr.<box key>                       the box model's name, as above
    detr.class_embed.*  [251, d]         bbox_head.fc_cls.*  [134, d]  (ids 0..249,
                                         no-object -> 133 labels, no-object)
    bbox_attention.{q,k}_linear.*        bbox_head.attention_map.{q,k}_proj.*
    mask_head.lay{1..5}.*                bbox_head.mask_head.convs.{0..4}.conv.*
    mask_head.gn{1..5}.*                 bbox_head.mask_head.convs.{0..4}.gn.*
    mask_head.adapter{1..3}.*            bbox_head.mask_head.adapters.{0..2}.*
    mask_head.out_lay.*                  bbox_head.mask_head.out_conv.*

Its classifier rows are COCO panoptic's category ids (things 1..90, stuff
92..200); mmdet's ``CocoPanopticDataset`` labels are
:data:`~.coco_panoptic_ids.COCO_PANOPTIC_IDS` in order.
"""
import argparse
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, NoReturn, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .coco_panoptic_ids import COCO_PANOPTIC_IDS, COCO_THING_IDS
from .original_arch import MASK_CONVS, MASK_LEVELS, OriginalArch, expected_keys, \
    expected_mask_keys, infer_arch
from .rename import ATTN_PARAM, PARAM, RenameTable

# The 80 category ids of COCO 2017, as listed under "categories" in the
# annotation files (instances_{train,val}2017.json), sorted: COCO panoptic's
# things. mmdet's CocoDataset maps them in this order to its contiguous
# labels 0..79 (CocoDataset.METAINFO['classes']); the release's classifier
# row i is category id i (rows of unused ids, 0 included, are "N/A").
COCO_CATEGORY_IDS: Tuple[int, ...] = COCO_THING_IDS
# release classifier on COCO: one row per id 0..90, then the no-object row
RELEASE_COCO_ROWS = max(COCO_CATEGORY_IDS) + 2
# release classifier on COCO panoptic: "large enough to hold max id + 1"
# (num_classes=250 in the release's build), ids 0..249, then no-object
RELEASE_PANOPTIC_ROWS = 251
# Bias of the "N/A" rows written by plugin_to_original: softmax gives them an
# exact zero, so the exported model scores exactly as the plugin's.
_ABSENT_ID_BIAS = -1e4
# Keys listed one by one in an error; past this, summed up by model part.
_MAX_LISTED = 30
_PART = re.compile(
    r'^((?:detr\.)?(?:backbone\.\d+\.body|backbone\.\d+|transformer\.\w+|[^.]+))')

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
# The panoptic model's mask parts. The release counts its blocks from 1
# (lay1, adapter1), the plugin's module lists from 0: one rule per block.
MASK_TABLE = RenameTable(
    [('bbox_head.attention_map.{qk}_proj.{p}', 'bbox_attention.{qk}_linear.{p}')]
    + [(f'bbox_head.mask_head.convs.{i}.{part}.{{p}}', f'mask_head.{release}{i + 1}.{{p}}')
       for i in range(MASK_CONVS) for part, release in (('conv', 'lay'), ('gn', 'gn'))]
    + [(f'bbox_head.mask_head.adapters.{i}.{{p}}', f'mask_head.adapter{i + 1}.{{p}}')
       for i in range(MASK_LEVELS)]
    + [('bbox_head.mask_head.out_conv.{p}', 'mask_head.out_lay.{p}')],
    placeholders=dict(qk='q|k', p=PARAM))
# UP-DETR's pretraining heads (random query patches): unused by a detector
_DROPPED = re.compile(r'^(patch2query|feature_align)\.')
# the panoptic layout: the box model under 'detr.', the mask parts beside it
_BOX_PREFIX = 'detr.'
_MASK_PART = re.compile(r'^(bbox_attention|mask_head)\.')
_PLUGIN_MASK_PART = re.compile(r'^bbox_head\.(attention_map|mask_head)\.')


class OriginalCheckpointError(ValueError):
    """A state dict that is not (or not all of) a DETR of the release's layout."""


class _ReleaseClasses(NamedTuple):
    """A release classifier's rows: one per category id 0..rows-2, no-object
    last; ``ids`` are the used ones, in mmdet's label order."""
    dataset: str
    ids: Tuple[int, ...]
    rows: int


_COCO = _ReleaseClasses('COCO', COCO_CATEGORY_IDS, RELEASE_COCO_ROWS)
_COCO_PANOPTIC = _ReleaseClasses('COCO panoptic', COCO_PANOPTIC_IDS, RELEASE_PANOPTIC_ROWS)


@dataclass
class OriginalConversion:
    """Result of :func:`convert_original`.

    Attributes:
        state_dict (OrderedDict[str, Tensor]): in the plugin's names.
        arch (OriginalArch): what the checkpoint holds (``arch.mask_head``:
            a panoptic model).
        dropped (list[str]): release keys without a counterpart (UP-DETR).
        coco_mapped (bool): the release's category-id rows became mmdet's
            labels + no-object (COCO: 92 -> 81; COCO panoptic: 251 -> 134).
    """
    state_dict: 'OrderedDict[str, Tensor]'
    arch: OriginalArch
    dropped: List[str] = field(default_factory=list)
    coco_mapped: bool = False

    @property
    def panoptic(self) -> bool:
        """A panoptic checkpoint (``detr.*``, ``bbox_attention.*``, ``mask_head.*``)."""
        return self.arch.mask_head


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


def _class_rows(weight: Tensor, bias: Tensor, num_classes: int, class_map: Optional[str],
                classes: _ReleaseClasses, name: str) -> Tuple[Tensor, Tensor, bool]:
    """Release classifier [R, d], [R] -> plugin's [num_classes + 1, d], [num_classes + 1].

    ``name`` is the classifier's key in the checkpoint (``class_embed`` or
    ``detr.class_embed``), for the error messages.
    """
    rows, num_ids = weight.shape[0], len(classes.ids)
    if bias.shape != (rows, ):
        _raise('the classifier is inconsistent', shapes=[
            f'{name}.bias {list(bias.shape)}: expected [{rows}] as {name}.weight'])
    if class_map == 'coco' and rows == classes.rows and num_classes == num_ids:
        index = torch.tensor(classes.ids + (rows - 1, ))  # the ids in label order, no-object
        return weight[index], bias[index], True
    if rows == num_classes + 1:  # already one row per label, no-object last
        return weight, bias, False
    expected = f'expected {num_classes + 1} rows (num_classes={num_classes} + no-object)'
    if rows == classes.rows:
        why = (f"class_map='coco' maps these rows ({classes.dataset} ids 0..{rows - 2} + "
               f'no-object) to {num_ids} classes, but num_classes={num_classes}'
               if class_map == 'coco' else expected)
        hint = (f"the release's {classes.dataset} classifier: use class_map='coco' with "
                f'num_classes={num_ids}, or num_classes={rows - 1} to keep the category ids '
                'as labels')
    elif classes is _COCO_PANOPTIC:
        why = f"{expected}, or {classes.rows} for the release's COCO panoptic ids"
        hint = 'a panoptic checkpoint fine-tuned on K classes has K + 1 rows: set num_classes=K'
    else:
        why = expected
        hint = ('a checkpoint fine-tuned on K classes has K + 1 rows: set num_classes=K; '
                'a UP-DETR pre-training checkpoint (3 rows: class 0, patch, no-object) '
                'converts with tools/model_converters/updetr_convert.py')
    _raise('the classifier does not fit the model',
           shapes=[f'{name}.weight {list(weight.shape)}: {why}'], hint=hint)


def _split_panoptic(state_dict: Mapping[str, Tensor]
                    ) -> Tuple['OrderedDict[str, Tensor]', 'OrderedDict[str, Tensor]', List[str]]:
    """Panoptic release state dict -> box part (``detr.`` removed), mask
    parts, and keys of neither."""
    box, mask, stray = OrderedDict(), OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith(_BOX_PREFIX):
            box[key[len(_BOX_PREFIX):]] = value
        elif _MASK_PART.match(key):
            mask[key] = value
        else:
            stray.append(key)
    return box, mask, stray


def convert_original(state_dict: Mapping[str, Tensor], num_classes: Optional[int] = None,
                     class_map: Optional[str] = 'coco',
                     reference: Optional[Mapping[str, Tensor]] = None) -> OriginalConversion:
    """Release state dict (box or panoptic) -> plugin state dict, checked, with a report.

    Steps: 1. tell a panoptic model (``detr.*`` and the mask parts) from a
    box model, and set the box part apart; 2. set UP-DETR's heads aside;
    3. check the keys against those of the architecture the names describe
    (and the mask parts); 4. map the classifier rows; 5. rename by
    :data:`RELEASE_TABLE` (and :data:`MASK_TABLE`), adding a zero
    ``num_batches_tracked`` after each backbone batch norm; 6. check against
    ``reference`` if given.

    Args:
        state_dict (Mapping[str, Tensor]): the release checkpoint's ``model``.
        num_classes (int, optional): K of the target model
            (``bbox_head.num_classes``). Defaults to None: mmdet's COCO
            classes, 80 for a box model, 133 (80 things + 53 stuff) for a
            panoptic one.
        class_map (str, optional): ``'coco'``: the release's category-id rows
            become mmdet's labels in order, then no-object: a box model's 92
            rows (ids 0..90, no-object) the 80 of :data:`COCO_CATEGORY_IDS`;
            a panoptic model's 251 rows (ids 0..249, no-object) the 133 of
            :data:`~.coco_panoptic_ids.COCO_PANOPTIC_IDS`. None, or any
            classifier with K + 1 rows: rows kept as they are. Defaults to
            ``'coco'``.
        reference (Mapping[str, Tensor], optional): the target model's state
            dict; the result must then match its keys and shapes exactly
            (catches what names cannot tell, e.g. fewer decoder layers).

    Returns:
        OriginalConversion: ``state_dict`` (tensors shared with the input,
        ``num_batches_tracked`` added), ``arch`` (``arch.mask_head`` for a
        panoptic model), ``dropped`` keys, ``coco_mapped``.

    Raises:
        OriginalCheckpointError: one error listing every missing, unexpected
            and mis-shaped key (a partial or non-release state dict, a
            panoptic model without its mask head, a classifier fitting
            neither the release's rows nor K + 1).
    """
    if class_map not in ('coco', None):
        raise ValueError(f"class_map must be 'coco' or None, got {class_map!r}")
    # 1. the layout: a box model, or a panoptic one (box model under 'detr.')
    panoptic = any(k.startswith(_BOX_PREFIX) or _MASK_PART.match(k) for k in state_dict)
    if panoptic:
        box, mask, stray = _split_panoptic(state_dict)
        if not mask:
            _raise('a panoptic DETR checkpoint (detr.* keys) without its mask head',
                   missing=expected_mask_keys(), unexpected=stray,
                   hint="the release's panoptic files hold bbox_attention.* and mask_head.* "
                   'beside detr.*; its box checkpoints have no detr. prefix')
    else:
        box, mask, stray = OrderedDict(state_dict), OrderedDict(), []
    prefix = _BOX_PREFIX if panoptic else ''
    classes = _COCO_PANOPTIC if panoptic else _COCO
    num_classes = len(classes.ids) if num_classes is None else num_classes
    keys = list(box)
    # 2. UP-DETR's pretraining heads
    dropped = [k for k in keys if _DROPPED.match(k)]
    # 3. every key of the architecture, and no other; num_batches_tracked are
    # optional: the release's frozen batch norm has none
    kept = [k for k in keys if k not in dropped and not k.endswith('.num_batches_tracked')]
    arch = infer_arch(kept)
    arch.mask_head = panoptic
    expected = expected_keys(arch)
    missing = [prefix + k for k in expected if k not in box]
    unexpected = [prefix + k for k in sorted(set(kept) - set(expected))] + stray
    if panoptic:
        missing += [k for k in expected_mask_keys() if k not in mask]
        unexpected += [k for k in mask if k not in expected_mask_keys()]
    if missing or unexpected:
        looks_converted = any(k.startswith(('queries.', 'query_embedding.', 'neck.',
                                            'bbox_head.')) for k in keys)
        _raise(f'not a complete {"panoptic " if panoptic else ""}DETR state dict of the '
               'original release layout', missing, unexpected,
               hint='this looks like an mmdet or PluginDETR state dict: load it '
               'directly, or convert with tools/model_converters/mmdet_detr_convert.py'
               if looks_converted else '')
    # 4. classifier rows
    fc_weight, fc_bias, coco_mapped = _class_rows(
        box['class_embed.weight'], box['class_embed.bias'], num_classes, class_map, classes,
        name=f'{prefix}class_embed')
    # 5. names
    renamed, unmatched = RELEASE_TABLE.rename(
        OrderedDict((k, box[k]) for k in keys if k not in dropped), to='plugin')
    if unmatched:  # only a stray num_batches_tracked outside the backbone gets here
        _raise('not a DETR state dict of the original release layout',
               unexpected=[prefix + k for k in unmatched])
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in renamed.items():
        out[key] = value
        if key.startswith('backbone.') and key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in renamed and (reference is None or counter in reference):
                out[counter] = torch.tensor(0, dtype=torch.long)
    out['bbox_head.fc_cls.weight'], out['bbox_head.fc_cls.bias'] = fc_weight, fc_bias
    out.update(MASK_TABLE.rename(mask, to='plugin').state_dict)  # all matched: checked in 3.
    # 6. the target model
    if reference is not None:
        _check_reference(out, reference, arch)
    return OriginalConversion(out, arch, dropped, coco_mapped)


def _check_reference(out: Mapping[str, Tensor], reference: Mapping[str, Tensor],
                     arch: OriginalArch) -> None:
    """One error if ``out`` does not match the target model's keys and shapes."""
    shapes = [f'{k} {list(v.shape)} (model: {list(reference[k].shape)})'
              for k, v in out.items() if k in reference and v.shape != reference[k].shape]
    missing = [k for k in reference if k not in out]
    unexpected = [k for k in out if k not in reference]
    if missing or unexpected or shapes:
        model_has_masks = any(_PLUGIN_MASK_PART.match(k) for k in reference)
        hint = ''
        if arch.mask_head != model_has_masks:
            hint = ('a panoptic checkpoint needs a panoptic model (PluginDETRPanoptic)'
                    if arch.mask_head else
                    'a box checkpoint has no mask head: use a PluginDETR config')
        _raise(f'the checkpoint ({arch.describe()}) does not fit the model (plugin names)',
               missing, unexpected, shapes, hint=hint)


def original_to_plugin(state_dict: Mapping[str, Tensor], num_classes: Optional[int] = None,
                       class_map: Optional[str] = 'coco',
                       reference: Optional[Mapping[str, Tensor]] = None
                       ) -> 'OrderedDict[str, Tensor]':
    """Release state dict (box or panoptic) -> plugin state dict; warns about dropped keys.

    See :func:`convert_original` for the arguments and errors.
    """
    result = convert_original(state_dict, num_classes, class_map, reference)
    if result.dropped:
        warnings.warn(f'dropped {len(result.dropped)} key(s) without a counterpart in '
                      f'PluginDETR (UP-DETR pretraining heads): {", ".join(result.dropped)}')
    return result.state_dict


def plugin_to_original(state_dict: Mapping[str, Tensor],
                       class_map: Optional[str] = 'coco') -> 'OrderedDict[str, Tensor]':
    """``PluginDETR`` or ``PluginDETRPanoptic`` state dict -> release layout.

    A state dict with ``bbox_head.attention_map.*`` / ``bbox_head.mask_head.*``
    becomes the release's panoptic layout (the box model under ``detr.``,
    then ``bbox_attention.*``, ``mask_head.*``). ``num_batches_tracked``
    counters are dropped. With ``class_map='coco'`` the classifier rows go
    back to the release's category-id rows (COCO: 81 -> 92; COCO panoptic:
    134 -> 251): the rows of the used ids and the no-object row, the unused
    ids filled with zero weights and a bias giving them zero probability, so
    the exported model scores as the plugin's (the release's own values of
    these rows are not recoverable).

    Args:
        state_dict (Mapping[str, Tensor]): a plugin state dict.
        class_map (str, optional): ``'coco'`` (rows -> category ids) or None
            (rows kept). Defaults to ``'coco'``.

    Returns:
        OrderedDict[str, Tensor]: the release's names (tensors shared, except
        the remapped classifier).

    Raises:
        OriginalCheckpointError: keys without a release counterpart, or an
            incomplete result, listed in one error.
    """
    if class_map not in ('coco', None):
        raise ValueError(f"class_map must be 'coco' or None, got {class_map!r}")
    plain = OrderedDict((k, v) for k, v in state_dict.items()
                        if not k.endswith('.num_batches_tracked'))
    mask = OrderedDict((k, plain.pop(k)) for k in list(plain) if _PLUGIN_MASK_PART.match(k))
    panoptic = bool(mask)
    out, unknown = RELEASE_TABLE.rename(plain, to='other')
    mask_out, mask_unknown = MASK_TABLE.rename(mask, to='other')
    missing = [k for k in expected_keys(infer_arch(list(out))) if k not in out]
    if panoptic:
        missing += [k for k in expected_mask_keys() if k not in mask_out]
    if unknown or mask_unknown or missing:
        _raise('not a PluginDETR state dict the release layout can hold (a ResNet backbone, '
               'plain learned queries)', missing, unknown + mask_unknown)
    if class_map == 'coco':
        classes = _COCO_PANOPTIC if panoptic else _COCO
        weight, bias = out['class_embed.weight'], out['class_embed.bias']
        if weight.shape[0] != len(classes.ids) + 1:
            _raise(f"class_map='coco' needs the {len(classes.ids)} {classes.dataset} classes",
                   shapes=[f'bbox_head.fc_cls.weight {list(weight.shape)}: expected '
                           f'{len(classes.ids) + 1} rows'])
        index = torch.tensor(classes.ids + (classes.rows - 1, ))
        full_weight = weight.new_zeros((classes.rows, weight.shape[1]))
        full_bias = bias.new_full((classes.rows, ), _ABSENT_ID_BIAS)
        full_weight[index], full_bias[index] = weight, bias
        out['class_embed.weight'], out['class_embed.bias'] = full_weight, full_bias
    if panoptic:
        out = OrderedDict([(_BOX_PREFIX + k, v) for k, v in out.items()]
                          + list(mask_out.items()))
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
