"""Positional encodings of a feature map (DETR paper, section 3.2 and A.4).

Both modules follow the call signature of mmdet's positional encodings,
``forward(mask, input=None) -> [B, 2 * num_feats, H, W]``, so either side can
stand in for the other inside a detector.
"""
import math
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig


def _not_padding(mask: Optional[Tensor], input: Optional[Tensor]) -> Tensor:
    """[B, H, W] float ones on valid pixels, from a padding mask or, with no
    mask (a batch without padding), from the feature map's shape."""
    if mask is not None:
        return (~mask.bool()).float()
    if input is None:
        raise ValueError('positional encoding needs a padding mask or the feature map')
    batch_size, _, height, width = input.shape
    return input.new_ones((batch_size, height, width), dtype=torch.float32)


@MODELS.register_module()
class PluginSinePositionalEncoding(BaseModule):
    """Fixed sine/cosine encoding of each pixel's (y, x) position.

    Each axis gets ``num_feats`` channels: position ``p`` (counted from 1 over
    the valid, unpadded pixels, optionally normalised to ``(0, scale]``) is
    divided by ``temperature ** (2 * (i // 2) / num_feats)``, and channels
    alternate sin (even i) and cos (odd i). The y channels come first. Padded
    pixels do not advance the count, so every image of a padded batch is
    encoded as if it stood alone (reference: ``PositionEmbeddingSine``).

    Args:
        num_feats (int): channels per axis; the output has ``2 * num_feats``.
            Defaults to 128.
        temperature (int): wavelength base. Defaults to 10000.
        normalize (bool): divide positions by the valid extent of each image.
            Defaults to True (DETR's setting).
        scale (float): range of normalised positions. Defaults to 2 * pi.
        eps (float): added to the extent before dividing. Defaults to 1e-6.
        offset (float): added to positions before normalising. Defaults to 0.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_feats: int = 128,
                 temperature: int = 10000,
                 normalize: bool = True,
                 scale: float = 2 * math.pi,
                 eps: float = 1e-6,
                 offset: float = 0.,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.eps = eps
        self.offset = offset

    def forward(self, mask: Optional[Tensor], input: Optional[Tensor] = None) -> Tensor:
        """Encode positions.

        Args:
            mask (Tensor, optional): [B, H, W], non-zero on padded pixels.
                None when no image of the batch is padded.
            input (Tensor, optional): [B, C, H, W] feature map, used for its
                shape when ``mask`` is None.

        Returns:
            Tensor: [B, 2 * num_feats, H, W] float32.
        """
        not_mask = _not_padding(mask, input)
        y_embed = not_mask.cumsum(1)  # [B, H, W], 1..h on valid rows
        x_embed = not_mask.cumsum(2)  # [B, H, W], 1..w on valid columns
        if self.normalize:
            y_embed = (y_embed + self.offset) / (y_embed[:, -1:, :] + self.eps) * self.scale
            x_embed = (x_embed + self.offset) / (x_embed[:, :, -1:] + self.eps) * self.scale
        pos = torch.cat((self._sine(y_embed), self._sine(x_embed)), dim=3)  # [B, H, W, 2F]
        return pos.permute(0, 3, 1, 2)

    def encode_points(self, points: Tensor) -> Tensor:
        """The encoding of normalised points, as the map's cells get it.

        A point (x, y) in [0, 1] is placed where ``forward`` puts a cell at
        that fraction of the valid extent (``normalize=True``): cell (i, j)
        of an h x w map is the point ((j + 1) / w, (i + 1) / h), up to
        ``eps``. Used for the queries' reference points
        (``PluginAnchorPointQueries``).

        Args:
            points (Tensor): [..., 2] (x, y) in [0, 1].

        Returns:
            Tensor: [..., 2 * num_feats] float32, y channels first.
        """
        points = points.float() * self.scale
        return torch.cat((self._sine(points[..., 1]), self._sine(points[..., 0])), dim=-1)

    def _sine(self, positions: Tensor) -> Tensor:
        """[...] positions -> [..., num_feats]: position / temperature **
        (2 * (i // 2) / num_feats), sin on even channels i and cos on odd
        ones, interleaved: s0 c1 s2 c3 ..."""
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=positions.device)
        dim_t = self.temperature**(2 * torch.div(dim_t, 2, rounding_mode='floor') / self.num_feats)
        pos = positions[..., None] / dim_t  # [..., num_feats]
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)

    def extra_repr(self) -> str:
        return (f'num_feats={self.num_feats}, temperature={self.temperature}, '
                f'normalize={self.normalize}, scale={self.scale:.4f}, eps={self.eps}')


@MODELS.register_module()
class PluginLearnedPositionalEncoding(BaseModule):
    """Learned absolute encoding: one embedding per column and per row.

    The x channels come first, then the y channels (reference:
    ``PositionEmbeddingLearned``). Feature maps may be at most
    ``row_num_embed`` x ``col_num_embed``.

    Args:
        num_feats (int): channels per axis. Defaults to 128.
        row_num_embed (int): number of row embeddings. Defaults to 50.
        col_num_embed (int): number of column embeddings. Defaults to 50.
        init_cfg (dict, optional): Defaults to uniform init of both tables.
    """

    def __init__(self,
                 num_feats: int = 128,
                 row_num_embed: int = 50,
                 col_num_embed: int = 50,
                 init_cfg: OptMultiConfig = dict(type='Uniform', layer='Embedding')) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_feats = num_feats
        self.row_embed = nn.Embedding(row_num_embed, num_feats)
        self.col_embed = nn.Embedding(col_num_embed, num_feats)

    def forward(self, mask: Optional[Tensor], input: Optional[Tensor] = None) -> Tensor:
        """[B, H, W] mask (or [B, C, H, W] input) -> [B, 2 * num_feats, H, W]."""
        ref = mask if mask is not None else input
        if ref is None:
            raise ValueError('positional encoding needs a padding mask or the feature map')
        batch_size, height, width = ref.shape[0], ref.shape[-2], ref.shape[-1]
        if height > self.row_embed.num_embeddings or width > self.col_embed.num_embeddings:
            raise ValueError(
                f'feature map {height}x{width} is larger than the learned table '
                f'({self.row_embed.num_embeddings}x{self.col_embed.num_embeddings}); '
                'raise row_num_embed / col_num_embed in positional_encoding')
        device = self.row_embed.weight.device
        x_emb = self.col_embed(torch.arange(width, device=device))  # [W, F]
        y_emb = self.row_embed(torch.arange(height, device=device))  # [H, F]
        pos = torch.cat((x_emb.unsqueeze(0).expand(height, -1, -1),
                         y_emb.unsqueeze(1).expand(-1, width, -1)), dim=-1)  # [H, W, 2F]
        return pos.permute(2, 0, 1).unsqueeze(0).expand(batch_size, -1, -1, -1)
