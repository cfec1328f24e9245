from .attention import DetrAttention
from .mask_head import PluginMaskHead, PluginMHAttentionMap
from .positional_encoding import PluginLearnedPositionalEncoding, PluginSinePositionalEncoding
from .queries import PluginAnchorPointQueries, PluginDETRQueries, PluginPatchQueries
from .transformer import (DetrDecoderLayer, DetrEncoderLayer, DetrFFN,
                          PluginDetrTransformerDecoder, PluginDetrTransformerEncoder)

__all__ = [
    'DetrAttention', 'DetrFFN', 'DetrEncoderLayer', 'DetrDecoderLayer',
    'PluginDetrTransformerEncoder', 'PluginDetrTransformerDecoder',
    'PluginSinePositionalEncoding', 'PluginLearnedPositionalEncoding', 'PluginDETRQueries',
    'PluginAnchorPointQueries', 'PluginPatchQueries', 'PluginMHAttentionMap', 'PluginMaskHead'
]
