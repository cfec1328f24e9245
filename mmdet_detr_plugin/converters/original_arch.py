"""What a state dict of the original DETR release holds, read from its names.

The release (facebookresearch/detr) names its modules after the torch
modules it is built of: torchvision's ResNet under ``backbone.0.body``,
``nn.TransformerEncoderLayer``-style layers under ``transformer``, and plain
heads. :func:`infer_arch` reads the depth of each part from the key names;
:func:`expected_keys` lists every key such a model has, so that a partial
or foreign state dict is caught with one complete list of what is missing.
The panoptic models (``DETRsegm``) hold such a box model under ``detr.``
and add the mask parts of :func:`expected_mask_keys`.
"""
import re
from dataclasses import dataclass
from typing import List, Tuple

_BN = ('weight', 'bias', 'running_mean', 'running_var')
_ATTN = ('in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias')
_WB = ('weight', 'bias')
# ResNet-50's blocks per stage and the paper's 6 + 6 layers, 3-layer box MLP:
# assumed where a checkpoint holds no key at all to count from
_DEFAULT_BLOCKS = (3, 4, 6, 3)
_DEFAULT_LAYERS = 6
_DEFAULT_MLP = 3
# the release's mask head (MaskHeadSmallConv) adapts 3 finer backbone levels
# (C4, C3, C2): 5 conv + GroupNorm blocks, 3 adapters, one output conv
MASK_LEVELS = 3
MASK_CONVS = MASK_LEVELS + 2
_RESNET_NAMES = {(True, (3, 4, 6, 3)): 'ResNet-50', (True, (3, 4, 23, 3)): 'ResNet-101',
                 (True, (3, 8, 36, 3)): 'ResNet-152', (False, (2, 2, 2, 2)): 'ResNet-18',
                 (False, (3, 4, 6, 3)): 'ResNet-34'}


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
        mask_head (bool): a panoptic model: the above under ``detr.``, plus
            :func:`expected_mask_keys` (not read from the box keys: set by
            the converter).
    """
    bottleneck: bool = True
    blocks: Tuple[int, ...] = _DEFAULT_BLOCKS
    encoder_layers: int = _DEFAULT_LAYERS
    decoder_layers: int = _DEFAULT_LAYERS
    decoder_self_attn: bool = True
    pre_norm: bool = False
    learned_pos: bool = False
    bbox_mlp_layers: int = _DEFAULT_MLP
    mask_head: bool = False

    def describe(self) -> str:
        """One line for reports, e.g. ``'ResNet-50, 6 encoder + 6 decoder
        layers, sine positional encoding'`` (``', mask head'`` added for a
        panoptic model)."""
        name = _RESNET_NAMES.get((self.bottleneck, self.blocks), f'ResNet blocks {self.blocks}')
        return (f'{name}, {self.encoder_layers} encoder + {self.decoder_layers} decoder layers'
                f'{" (pre-norm)" if self.pre_norm else ""}, '
                f'{"learned" if self.learned_pos else "sine"} positional encoding'
                f'{", mask head" if self.mask_head else ""}')


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


def expected_mask_keys() -> List[str]:
    """Every key of a panoptic release model's mask parts, in module order.

    ``bbox_attention`` (``MHAttentionMap``: q and k projections, [d, d]) and
    ``mask_head`` (``MaskHeadSmallConv``: ``lay1..5`` 3x3 convs with
    ``gn1..5`` GroupNorms, ``out_lay`` to 1 channel, ``adapter1..3`` 1x1
    convs of C4, C3, C2), all with a bias. For d = 256 and 8 heads:
    lay1 [264, 264, 3, 3], lay2..5 to 128, 64, 32, 16 channels, out_lay
    [1, 16, 3, 3], adapter1..3 [128, 1024, 1, 1], [64, 512, 1, 1],
    [32, 256, 1, 1] (ResNet-50 and -101 alike).

    Returns:
        list[str]: release names (without the ``detr.`` of the box part).
    """
    keys = [f'bbox_attention.{qk}_linear.{p}' for qk in 'qk' for p in _WB]
    for n in range(1, MASK_CONVS + 1):
        keys += [f'mask_head.{part}{n}.{p}' for part in ('lay', 'gn') for p in _WB]
    keys += [f'mask_head.out_lay.{p}' for p in _WB]
    keys += [f'mask_head.adapter{n}.{p}' for n in range(1, MASK_LEVELS + 1) for p in _WB]
    return keys
