"""Convert state dicts between the plugin's ``PluginDETR`` and mmdet's ``DETR``.

The two models compute the same function; only parameter names differ:

==========================================  =====================================================
plugin                                      mmdet 3.x ``DETR``
==========================================  =====================================================
``neck.proj.*``                             ``neck.convs.0.conv.*`` (``ChannelMapper``)
``{en,de}coder.layers.i.self_attn.*``       ``{en,de}coder.layers.i.self_attn.attn.*``
``decoder.layers.i.cross_attn.*``           ``decoder.layers.i.cross_attn.attn.*``
``*.layers.i.ffn.linear1.*``                ``*.layers.i.ffn.layers.0.0.*``
``*.layers.i.ffn.linear2.*``                ``*.layers.i.ffn.layers.1.*``
``*.layers.i.norm{1,2,3}.*``                ``*.layers.i.norms.{0,1,2}.*``
``decoder.norm.*``                          ``decoder.post_norm.*``
``bbox_head.bbox_mlp.{0,1}.*``              ``bbox_head.reg_ffn.layers.0.0.*``, ``reg_ffn.layers.1.*``
``bbox_head.bbox_mlp.2.*``                  ``bbox_head.fc_reg.*``
==========================================  =====================================================

Everything else (``backbone.*``, ``query_embedding.weight``,
``bbox_head.fc_cls.*``) keeps its name. Models with a decoder lacking
self-attention map ``norm2, norm3`` the same way (mmdet has no such model).

Checkpoints of the original DETR release: see :mod:`.convert_original`.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

from torch import Tensor

# (plugin pattern, mmdet replacement); applied first match wins.
_PLUGIN_TO_MMDET: List[Tuple[str, str]] = [
    (r'^neck\.proj\.', 'neck.convs.0.conv.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.(self_attn|cross_attn)\.', r'\1.\2.attn.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.ffn\.linear1\.', r'\1.ffn.layers.0.0.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.ffn\.linear2\.', r'\1.ffn.layers.1.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.norm1\.', r'\1.norms.0.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.norm2\.', r'\1.norms.1.'),
    (r'^(decoder\.layers\.\d+)\.norm3\.', r'\1.norms.2.'),
    (r'^decoder\.norm\.', 'decoder.post_norm.'),
    (r'^bbox_head\.bbox_mlp\.0\.', 'bbox_head.reg_ffn.layers.0.0.'),
    (r'^bbox_head\.bbox_mlp\.1\.', 'bbox_head.reg_ffn.layers.1.'),
    (r'^bbox_head\.bbox_mlp\.2\.', 'bbox_head.fc_reg.'),
]
_MMDET_TO_PLUGIN: List[Tuple[str, str]] = [
    (r'^neck\.convs\.0\.conv\.', 'neck.proj.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.(self_attn|cross_attn)\.attn\.', r'\1.\2.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.ffn\.layers\.0\.0\.', r'\1.ffn.linear1.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.ffn\.layers\.1\.', r'\1.ffn.linear2.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.norms\.0\.', r'\1.norm1.'),
    (r'^((?:en|de)coder\.layers\.\d+)\.norms\.1\.', r'\1.norm2.'),
    (r'^(decoder\.layers\.\d+)\.norms\.2\.', r'\1.norm3.'),
    (r'^decoder\.post_norm\.', 'decoder.norm.'),
    (r'^bbox_head\.reg_ffn\.layers\.0\.0\.', 'bbox_head.bbox_mlp.0.'),
    (r'^bbox_head\.reg_ffn\.layers\.1\.', 'bbox_head.bbox_mlp.1.'),
    (r'^bbox_head\.fc_reg\.', 'bbox_head.bbox_mlp.2.'),
]
# names shared by both layouts
_SHARED = re.compile(r'^(backbone\.|query_embedding\.weight$|bbox_head\.fc_cls\.|data_preprocessor\.)')


def _rename(state_dict: Dict[str, Tensor], rules: List[Tuple[str, str]],
            source: str) -> 'OrderedDict[str, Tensor]':
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        for pattern, repl in rules:
            new_key, hits = re.subn(pattern, repl, key)
            if hits:
                out[new_key] = value
                break
        else:
            if _SHARED.match(key):
                out[key] = value
            else:
                unknown.append(key)
    if unknown:
        raise KeyError(f'{len(unknown)} key(s) are not part of a {source} DETR state dict: '
                       f'{unknown[:10]}' + (' ...' if len(unknown) > 10 else ''))
    return out


def plugin_to_mmdet(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``PluginDETR`` state dict -> mmdet ``DETR`` state dict (tensors shared)."""
    if any(k.startswith('encoder.norm.') for k in state_dict):
        raise KeyError('encoder.norm.* (a pre-norm encoder) has no counterpart in mmdet\'s DETR')
    return _rename(state_dict, _PLUGIN_TO_MMDET, 'PluginDETR')


def mmdet_to_plugin(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """mmdet ``DETR`` state dict -> ``PluginDETR`` state dict (tensors shared)."""
    return _rename(state_dict, _MMDET_TO_PLUGIN, 'mmdet')
