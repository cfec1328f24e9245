from .attention import DetrAttention
from .positional_encoding import PluginLearnedPositionalEncoding, PluginSinePositionalEncoding
from .transformer import (DetrDecoderLayer, DetrEncoderLayer, PluginDetrTransformerDecoder,
                          PluginDetrTransformerEncoder)

__all__ = [
    'DetrAttention', 'DetrEncoderLayer', 'DetrDecoderLayer', 'PluginDetrTransformerEncoder',
    'PluginDetrTransformerDecoder', 'PluginSinePositionalEncoding',
    'PluginLearnedPositionalEncoding'
]
