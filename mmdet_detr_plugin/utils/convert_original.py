"""Convert checkpoints of the original DETR release (facebookresearch/detr).

The release's models (DETR R50/R101, their DC5 variants, UP-DETR fine-tuned
models) compute what ``PluginDETR`` computes with mmdet's ``ResNet``; only the
names differ, plus the class rows of the classifier::

    backbone.0.body.*  (torchvision ResNet)           -> backbone.*  (mmdet ResNet)
    backbone.1.{row,col}_embed.weight  (learned)      -> positional_encoding.{row,col}_embed.weight
    input_proj.*                                      -> neck.proj.*
    transformer.{en,de}coder.layers.i.linear{1,2}.*   -> {en,de}coder.layers.i.ffn.linear{1,2}.*
    transformer.decoder.layers.i.multihead_attn.*     -> decoder.layers.i.cross_attn.*
    transformer.{en,de}coder.layers.i.self_attn.*     -> {en,de}coder.layers.i.self_attn.*
    transformer.{en,de}coder.layers.i.norm{1,2,3}.*   -> {en,de}coder.layers.i.norm{1,2,3}.*
    transformer.{en,de}coder.norm.*  (encoder: pre-norm) -> {en,de}coder.norm.*
    query_embed.weight                                -> query_embedding.weight
    class_embed.*  [92, d]  (ids 0..90, no-object)    -> bbox_head.fc_cls.*  [81, d]  (see class_map)
    bbox_embed.layers.i.*                             -> bbox_head.bbox_mlp.i.*

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

_ORIGINAL_TO_PLUGIN: List[Tuple[str, str]] = [
    (r'^backbone\.0\.body\.', 'backbone.'),
    (r'^backbone\.1\.(row|col)_embed\.', r'positional_encoding.\1_embed.'),
    (r'^input_proj\.', 'neck.proj.'),
    (r'^transformer\.((?:en|de)coder\.layers\.\d+)\.linear([12])\.', r'\1.ffn.linear\2.'),
    (r'^transformer\.(decoder\.layers\.\d+)\.multihead_attn\.', r'\1.cross_attn.'),
    (r'^transformer\.((?:en|de)coder)\.', r'\1.'),  # self_attn, norm{1,2,3}, final norms
    (r'^query_embed\.weight$', 'query_embedding.weight'),
    (r'^class_embed\.', 'bbox_head.fc_cls.'),
    (r'^bbox_embed\.layers\.(\d+)\.', r'bbox_head.bbox_mlp.\1.'),
]
_PLUGIN_TO_ORIGINAL: List[Tuple[str, str]] = [
    (r'^backbone\.', 'backbone.0.body.'),
    (r'^positional_encoding\.(row|col)_embed\.', r'backbone.1.\1_embed.'),
    (r'^neck\.proj\.', 'input_proj.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.ffn\.linear([12])\.', r'transformer.\1.linear\2.'),
    (r'^(decoder\.layers\.\d+)\.cross_attn\.', r'transformer.\1.multihead_attn.'),
    (r'^((?:en|de)coder\.(?:layers\.\d+\.(?:self_attn|norm[123])|norm)\.)', r'transformer.\1'),
    (r'^query_embedding\.weight$', 'query_embed.weight'),
    (r'^bbox_head\.fc_cls\.', 'class_embed.'),
    (r'^bbox_head\.bbox_mlp\.(\d+)\.', r'bbox_embed.layers.\1.'),
]
# UP-DETR's pretraining heads (random query patches): unused by a detector
_DROPPED = re.compile(r'^(patch2query|feature_align)\.')
_PANOPTIC = re.compile(r'^(detr\.|bbox_attention\.|mask_head\.)')

_BN = ('weight', 'bias', 'running_mean', 'running_var')
_ATTN = ('in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias')
_WB = ('weight', 'bias')
# ResNet-50's blocks per stage and the paper's 6 + 6 layers, 3-layer box MLP:
# assumed where a checkpoint holds no key at all to count from
_DEFAULT_BLOCKS = (3, 4, 6, 3)
_DEFAULT_LAYERS = 6
_DEFAULT_MLP = 3
_RESNET_NAMES = {(True, (3, 4, 6, 3)): 'ResNet-50', (True, (3, 4, 23, 3)): 'ResNet-101',
                 (True, (3, 8, 36, 3)): 'ResNet-152', (False, (2, 2, 2, 2)): 'ResNet-18',
                 (False, (3, 4, 6, 3)): 'ResNet-34'}


class OriginalCheckpointError(ValueError):
    """A state dict that is not (or not all of) a DETR of the release's layout."""


@dataclass
class OriginalArch:
    """What a release state dict holds, read from its key names.

    Attributes:
        bottleneck (bool): ResNet-50 and deeper (``conv3`` in each block).
        blocks (tuple[int]): blocks of ``layer1..4`` (R50: 3, 4, 6, 3; R101:
            3, 4, 23, 3).
        encoder_layers, decoder_layers (int): transformer depth.
        decoder_self_attn (bool): the decoder layers have self-attention.
        pre_norm (bool): ``transformer.encoder.norm`` is present.
        learned_pos (bool): ``backbone.1.{row,col}_embed`` are present.
        bbox_mlp_layers (int): layers of the box MLP.
    """
    bottleneck: bool = True
    blocks: Tuple[int, ...] = _DEFAULT_BLOCKS
    encoder_layers: int = _DEFAULT_LAYERS
    decoder_layers: int = _DEFAULT_LAYERS
    decoder_self_attn: bool = True
    pre_norm: bool = False
    learned_pos: bool = False
    bbox_mlp_layers: int = _DEFAULT_MLP

    def describe(self) -> str:
        name = _RESNET_NAMES.get((self.bottleneck, self.blocks), f'ResNet blocks {self.blocks}')
        return (f'{name}, {self.encoder_layers} encoder + {self.decoder_layers} decoder layers'
                f'{" (pre-norm)" if self.pre_norm else ""}, '
                f'{"learned" if self.learned_pos else "sine"} positional encoding')


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


def _count(keys: List[str], pattern: str, default: int) -> int:
    """1 + the largest index captured by ``pattern``; ``default`` if none."""
    found = [int(m.group(1)) for m in map(re.compile(pattern).match, keys) if m]
    return max(found) + 1 if found else default


def infer_arch(keys: List[str]) -> OriginalArch:
    """Read the architecture from the key names of a release state dict.

    Args:
        keys (list[str]): the state dict's keys (release names).

    Returns:
        OriginalArch: counts are 1 + the largest index seen, so a hole (a
        missing middle layer) shows up in :func:`expected_keys`; parts with
        no key at all get DETR R50's values.
    """
    body = r'^backbone\.0\.body\.layer'
    has_backbone = any(k.startswith('backbone.0.body.') for k in keys)
    blocks = tuple(_count(keys, rf'{body}{s}\.(\d+)\.', _DEFAULT_BLOCKS[s - 1])
                   for s in range(1, 5))
    return OriginalArch(
        bottleneck=not has_backbone or any(re.match(rf'{body}\d\.\d+\.conv3\.', k) for k in keys),
        blocks=blocks,
        encoder_layers=_count(keys, r'^transformer\.encoder\.layers\.(\d+)\.', _DEFAULT_LAYERS),
        decoder_layers=_count(keys, r'^transformer\.decoder\.layers\.(\d+)\.', _DEFAULT_LAYERS),
        decoder_self_attn=any(re.match(r'^transformer\.decoder\.layers\.\d+\.self_attn\.', k)
                              for k in keys) or not any('.multihead_attn.' in k for k in keys),
        pre_norm=any(k.startswith('transformer.encoder.norm.') for k in keys),
        learned_pos=any(k.startswith('backbone.1.') for k in keys),
        bbox_mlp_layers=_count(keys, r'^bbox_embed\.layers\.(\d+)\.', _DEFAULT_MLP))


def expected_keys(arch: OriginalArch) -> List[str]:
    """Every key a release state dict of ``arch`` has.

    Args:
        arch (OriginalArch): e.g. from :func:`infer_arch`.

    Returns:
        list[str]: release names, without ``num_batches_tracked`` (frozen BN).
    """
    keys = []

    def add(prefix: str, names: Tuple[str, ...]) -> None:
        keys.extend(f'{prefix}.{n}' for n in names)

    body = 'backbone.0.body'
    keys.append(f'{body}.conv1.weight')
    add(f'{body}.bn1', _BN)
    for stage, num_blocks in enumerate(arch.blocks, 1):
        for i in range(num_blocks):
            block = f'{body}.layer{stage}.{i}'
            for j in range(1, 4 if arch.bottleneck else 3):
                keys.append(f'{block}.conv{j}.weight')
                add(f'{block}.bn{j}', _BN)
            # torchvision adds a projection where the stride or width changes:
            # every first block of a bottleneck ResNet, stages 2-4 of a basic one
            if i == 0 and (arch.bottleneck or stage > 1):
                keys.append(f'{block}.downsample.0.weight')
                add(f'{block}.downsample.1', _BN)
    if arch.learned_pos:
        keys += ['backbone.1.row_embed.weight', 'backbone.1.col_embed.weight']
    for i in range(arch.encoder_layers):
        layer = f'transformer.encoder.layers.{i}'
        add(f'{layer}.self_attn', _ATTN)
        for sub in ('linear1', 'linear2', 'norm1', 'norm2'):
            add(f'{layer}.{sub}', _WB)
    if arch.pre_norm:
        add('transformer.encoder.norm', _WB)
    for i in range(arch.decoder_layers):
        layer = f'transformer.decoder.layers.{i}'
        if arch.decoder_self_attn:
            add(f'{layer}.self_attn', _ATTN)
            add(f'{layer}.norm1', _WB)
        add(f'{layer}.multihead_attn', _ATTN)
        for sub in ('linear1', 'linear2', 'norm2', 'norm3'):
            add(f'{layer}.{sub}', _WB)
    add('transformer.decoder.norm', _WB)
    add('class_embed', _WB)
    for i in range(arch.bbox_mlp_layers):
        add(f'bbox_embed.layers.{i}', _WB)
    keys.append('query_embed.weight')
    add('input_proj', _WB)
    return keys


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
    msg = problem
    if missing:
        msg += _listed('missing key(s)', list(missing))
    if unexpected:
        msg += _listed('unexpected key(s)', list(unexpected))
    if shapes:
        msg += _listed('shape mismatch(es)', list(shapes))
    raise OriginalCheckpointError(msg + (f'\n  hint: {hint}' if hint else ''))


def _rename(key: str, rules: List[Tuple[str, str]]) -> Optional[str]:
    for pattern, repl in rules:
        new_key, hits = re.subn(pattern, repl, key)
        if hits:
            return new_key
    return None


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
                'a UP-DETR pretrained checkpoint (3 rows: match / no match) has no '
                'classifier for detection')
    _raise('the classifier does not fit the model',
           shapes=[f'class_embed.weight {list(weight.shape)}: {why}'], hint=hint)


def convert_original(state_dict: Mapping[str, Tensor], num_classes: int = 80,
                     class_map: Optional[str] = 'coco',
                     reference: Optional[Mapping[str, Tensor]] = None) -> OriginalConversion:
    """Release state dict -> ``PluginDETR`` state dict, checked, with a report.

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
    panoptic = [k for k in keys if _PANOPTIC.match(k)]
    if panoptic:
        _raise('panoptic DETR checkpoints are not supported yet: PluginDETR has no mask head',
               unexpected=panoptic)
    dropped = [k for k in keys if _DROPPED.match(k)]
    # num_batches_tracked are optional: the release's frozen batch norm has none
    kept = [k for k in keys if k not in dropped and not k.endswith('.num_batches_tracked')]
    arch = infer_arch(kept)
    expected = expected_keys(arch)
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        looks_converted = any(k.startswith(('query_embedding.', 'neck.', 'bbox_head.'))
                              for k in keys)
        _raise('not a complete DETR state dict of the original release layout', missing,
               unexpected, hint='this looks like an mmdet or PluginDETR state dict: load it '
               'directly, or convert with tools/model_converters/mmdet_detr_convert.py'
               if looks_converted else '')

    fc_weight, fc_bias, coco_mapped = _class_rows(
        state_dict['class_embed.weight'], state_dict['class_embed.bias'], num_classes, class_map)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key in keys:
        if key in dropped:
            continue
        new_key = _rename(key, _ORIGINAL_TO_PLUGIN)
        out[new_key] = state_dict[key]
        if key.endswith('.running_var') and key.startswith('backbone.0.body.'):
            counter = new_key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in out and (reference is None or counter in reference):
                out[counter] = torch.tensor(0, dtype=torch.long)
    out['bbox_head.fc_cls.weight'], out['bbox_head.fc_cls.bias'] = fc_weight, fc_bias

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
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        if key.endswith('.num_batches_tracked'):
            continue
        new_key = _rename(key, _PLUGIN_TO_ORIGINAL)
        if new_key is None:
            unknown.append(key)
        else:
            out[new_key] = value
    missing = [k for k in expected_keys(infer_arch(list(out))) if k not in out]
    if unknown or missing:
        _raise('not a PluginDETR state dict with a ResNet backbone', missing, unknown)
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
