from .attention import DetrAttention
from .denoising import PluginDenoisingQueries
from .mask_head import PluginMaskHead, PluginMHAttentionMap
from .positional_encoding import PluginLearnedPositionalEncoding, PluginSinePositionalEncoding
from .queries import (PluginAnchorBoxQueries, PluginAnchorPointQueries, PluginDETRQueries,
                      PluginPatchQueries, PluginProposalQueries)
from .transformer import (DetrDecoderLayer, DetrEncoderLayer, DetrFFN,
                          PluginDetrTransformerDecoder, PluginDetrTransformerEncoder)

__all__ = [
    'DetrAttention', 'DetrFFN', 'DetrEncoderLayer', 'DetrDecoderLayer',
    'PluginDetrTransformerEncoder', 'PluginDetrTransformerDecoder',
    'PluginSinePositionalEncoding', 'PluginLearnedPositionalEncoding', 'PluginDETRQueries',
    'PluginAnchorPointQueries', 'PluginAnchorBoxQueries', 'PluginDenoisingQueries',
    'PluginPatchQueries', 'PluginProposalQueries', 'PluginMHAttentionMap', 'PluginMaskHead'
]
