"""Query schemes: what the decoder's object queries are made of.

A query scheme is a small registered module with one contract::

    decoder_inputs, head_inputs = scheme(memory, batch_data_samples)

* ``decoder_inputs``: ``query`` [B, Q, d] (the content the decoder starts
  from), ``query_pos`` [B, Q, d] (added to queries and keys at every layer)
  and, when queries must not all see each other, ``self_attn_mask`` [Q, Q]
  bool (True where query i may not attend to query j);
* ``head_inputs``: what the head and the loss need besides the decoder's
  states (``references`` [B, Q, 2] for boxes predicted relative to points,
  ``num_query_groups`` for independently matched groups, ...).

``PluginDETR`` builds its scheme from ``model.queries`` and does not change
when a scheme is added. Five are here: DETR's learned queries
(:class:`PluginDETRQueries`), learned reference points
(:class:`PluginAnchorPointQueries`), 4-D anchor boxes
(:class:`PluginAnchorBoxQueries`) and anchor boxes selected from the
encoder head's proposals (:class:`PluginProposalQueries`, which takes the
``proposals`` ``PluginDETR`` passes), all with query groups (Group DETR),
and UP-DETR's patch queries (:class:`PluginPatchQueries`), which also take
the patch features that ``PluginUPDETR`` passes as ``patch_features``.
Denoising training (``denoising.py``) wraps any of the first four.

A scheme whose queries stand for boxes also has ``box_queries(boxes)``
(boxes [B, M, 4] normalised cxcywh -> ``query_pos`` [B, M, d] and
``references`` [B, M, R]): the queries it would make for those boxes, which
denoising training feeds with noised ground truth.
"""
from typing import Dict, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import OptConfigType, OptMultiConfig


def group_attention_mask(num_groups: int, num_queries: int, device: torch.device) -> Tensor:
    """[G * N, G * N] bool, True where query i and query j are in different
    groups of N (so that i may not attend to j).

    Example:
        >>> group_attention_mask(2, 2, 'cpu').int()
        tensor([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [1, 1, 0, 0],
                [1, 1, 0, 0]], dtype=torch.int32)
    """
    group_of = torch.arange(num_groups * num_queries, device=device) // num_queries
    return group_of[:, None] != group_of[None, :]


@MODELS.register_module()
class PluginDETRQueries(BaseModule):
    """DETR's object queries (DETR paper, 3.2): N learned embeddings are the
    query positions, and the decoder's content starts at zeros.

    With ``num_groups`` G > 1 (Group DETR, Chen et al. 2022), training runs G
    groups of N queries, each blind to the other groups in the decoder's
    self-attention and matched one-to-one to the ground truth on its own
    (``num_query_groups`` for the head): G times the positive queries per
    image, so faster convergence, at the same test-time cost, since only the
    first group runs at test time.

    Args:
        num_queries (int): N, the queries at test time. ``PluginDETR`` fills
            in its ``num_queries``. Defaults to 100.
        embed_dims (int): d. ``PluginDETR`` fills in its width. Defaults to 256.
        num_groups (int): G query groups in training. Defaults to 1 (DETR).
        init_cfg (dict, optional): Defaults to None (``nn.Embedding``'s
            normal init, as the reference).
    """

    def __init__(self, num_queries: int = 100, embed_dims: int = 256, num_groups: int = 1,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('num_queries', num_queries), ('num_groups', num_groups)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'model.queries.{name} must be a positive int, got {value!r}')
        self.num_queries = num_queries
        self.embed_dims = embed_dims
        self.num_groups = num_groups
        self.embedding = nn.Embedding(num_groups * num_queries, embed_dims)  # [G * N, d]

    def forward(self, memory: Tensor,
                batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """Queries for a batch.

        Args:
            memory (Tensor): [B, S, d] encoder output (for the batch size,
                dtype and device).
            batch_data_samples (list[DetDataSample], optional): unused here.

        Returns:
            tuple[dict, dict]: decoder inputs ``query``, ``query_pos`` [B, Q, d]
            (Q = G * N in training, N at test time) and, with groups,
            ``self_attn_mask`` [Q, Q]; head inputs (``num_query_groups`` with
            groups, and what :meth:`embed` adds).
        """
        groups = self.num_groups if self.training else 1
        num_all = groups * self.num_queries
        query, query_pos, head_inputs = self.embed(num_all)  # [Q, d], [Q, d]
        batch_size = memory.size(0)
        decoder_inputs = dict(
            query=query.to(memory.dtype).unsqueeze(0).expand(batch_size, -1, -1),
            query_pos=query_pos.to(memory.dtype).unsqueeze(0).expand(batch_size, -1, -1))
        head_inputs = {k: v.unsqueeze(0).expand(batch_size, *v.shape)
                       for k, v in head_inputs.items()}
        if groups > 1:
            decoder_inputs['self_attn_mask'] = group_attention_mask(
                groups, self.num_queries, memory.device)
            head_inputs['num_query_groups'] = groups
        return decoder_inputs, head_inputs

    def embed(self, num_all: int) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """The first ``num_all`` queries, shared by every image: content [Q, d],
        position [Q, d] and per-query head inputs (each [Q, ...])."""
        query_pos = self.embedding.weight[:num_all]
        return torch.zeros_like(query_pos), query_pos, {}

    def extra_repr(self) -> str:
        return f'num_queries={self.num_queries}, num_groups={self.num_groups}'

    # DETR's queries carry no box: denoising brings its own box encoding
    box_queries = None
    takes_denoising = True


@MODELS.register_module()
class PluginAnchorPointQueries(PluginDETRQueries):
    """Queries with learned reference points (Anchor DETR, Wang et al. 2022;
    Conditional DETR, Meng et al. 2021).

    Each query has a point (x, y) in [0, 1], learned in logit space. Its
    position is an MLP of the point's sine encoding (the encoding the memory's
    cells get, :meth:`PluginSinePositionalEncoding.encode_points`), its
    learned embedding is its content, and the head predicts the box centre as
    an offset from the point in logit space (``references`` [B, Q, 2]).
    Cross-attention is then local from the first step, which converges much
    faster than DETR's queries. Query groups as in :class:`PluginDETRQueries`.

    Args:
        num_queries, embed_dims, num_groups: as :class:`PluginDETRQueries`.
        positional_encoding (dict, optional): the points' encoding; keep it
            equal to the detector's ``positional_encoding`` so that a point
            and the memory cell under it get the same encoding. Defaults to
            ``PluginSinePositionalEncoding(num_feats=embed_dims / 2)``,
            DETR's.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, num_queries: int = 100, embed_dims: int = 256, num_groups: int = 1,
                 positional_encoding: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(num_queries, embed_dims, num_groups, init_cfg=init_cfg)
        self.anchors = nn.Embedding(num_groups * num_queries, 2)  # logit(x, y) [G * N, 2]
        self.pos_mlp = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                                     nn.Linear(embed_dims, embed_dims))
        encoding = dict(type='PluginSinePositionalEncoding', num_feats=embed_dims // 2)
        encoding.update(positional_encoding or {})
        self.point_encoding = MODELS.build(encoding)
        if not hasattr(self.point_encoding, 'encode_points'):
            raise ValueError('model.queries.positional_encoding must encode points (e.g. '
                             f'PluginSinePositionalEncoding), got {encoding["type"]}')
        if 2 * self.point_encoding.num_feats != embed_dims:
            raise ValueError(f'model.queries.positional_encoding.num_feats '
                             f'({self.point_encoding.num_feats}) must be half of embed_dims '
                             f'({embed_dims})')

    def init_weights(self) -> None:
        """Points spread uniformly over the image (Anchor DETR)."""
        super().init_weights()
        with torch.no_grad():
            points = torch.rand_like(self.anchors.weight).clamp_(0.01, 0.99)
            self.anchors.weight.copy_(torch.logit(points))

    def embed(self, num_all: int) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        points = self.anchors.weight[:num_all].sigmoid()  # [Q, 2] (x, y) in (0, 1)
        encoded = self.point_encoding.encode_points(points).to(points.dtype)  # [Q, d]
        query_pos = self.pos_mlp(encoded)
        return self.embedding.weight[:num_all], query_pos, dict(references=points)

    def box_queries(self, boxes: Tensor) -> Tuple[Tensor, Tensor]:
        """Queries at given boxes' centres: boxes [B, M, 4] normalised cxcywh
        -> ``query_pos`` [B, M, d] and ``references`` [B, M, 2] (the centres;
        a point carries no size, so w and h are not an input)."""
        points = boxes[..., :2]
        encoded = self.point_encoding.encode_points(points).to(boxes.dtype)
        return self.pos_mlp(encoded), points


@MODELS.register_module()
class PluginAnchorBoxQueries(PluginAnchorPointQueries):
    """Queries with learned 4-D anchor boxes (DAB-DETR, Liu et al. 2022).

    As :class:`PluginAnchorPointQueries`, but each query's reference is a
    box (cx, cy, w, h) in [0, 1], learned in logit space: its position is an
    MLP (2d -> d -> d) of the sine encodings of (cx, cy) and of (w, h)
    concatenated, and the head predicts all four coordinates as offsets from
    it in logit space (``references`` [B, Q, 4]). A noised ground-truth box
    then enters denoising training whole, size included (DN-DETR).

    Args:
        num_queries, embed_dims, num_groups, positional_encoding, init_cfg:
            as :class:`PluginAnchorPointQueries`.
    """

    def __init__(self, num_queries: int = 100, embed_dims: int = 256, num_groups: int = 1,
                 positional_encoding: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(num_queries, embed_dims, num_groups, positional_encoding, init_cfg)
        self.anchors = nn.Embedding(num_groups * num_queries, 4)  # logit(cx, cy, w, h)
        self.pos_mlp = nn.Sequential(nn.Linear(2 * embed_dims, embed_dims),
                                     nn.ReLU(inplace=True), nn.Linear(embed_dims, embed_dims))

    def init_weights(self) -> None:
        """Centres uniform over the image, sides uniform in [0.05, 0.5]."""
        BaseModule.init_weights(self)
        with torch.no_grad():
            centres = torch.rand_like(self.anchors.weight[:, :2]).clamp_(0.01, 0.99)
            sides = 0.05 + 0.45 * torch.rand_like(self.anchors.weight[:, 2:])
            self.anchors.weight.copy_(torch.logit(torch.cat((centres, sides), dim=1)))

    def encode_boxes(self, boxes: Tensor) -> Tensor:
        """[..., 4] cxcywh in [0, 1] -> [..., 2d]: sine encodings of the
        centre and of the size (the size as if it were a point (w, h))."""
        return torch.cat((self.point_encoding.encode_points(boxes[..., :2]),
                          self.point_encoding.encode_points(boxes[..., 2:])), dim=-1)

    def embed(self, num_all: int) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        boxes = self.anchors.weight[:num_all].sigmoid()  # [Q, 4] cxcywh in (0, 1)
        query_pos = self.pos_mlp(self.encode_boxes(boxes).to(boxes.dtype))
        return self.embedding.weight[:num_all], query_pos, dict(references=boxes)

    def box_queries(self, boxes: Tensor) -> Tuple[Tensor, Tensor]:
        """boxes [B, M, 4] normalised cxcywh -> ``query_pos`` [B, M, d] and
        ``references`` [B, M, 4] (the boxes)."""
        return self.pos_mlp(self.encode_boxes(boxes).to(boxes.dtype)), boxes


@MODELS.register_module()
class PluginProposalQueries(PluginAnchorBoxQueries):
    """Anchor boxes selected from the encoder's proposals (two-stage query
    selection: Deformable DETR's two-stage variant, DINO's mixed query
    selection).

    ``PluginDETR`` runs its ``encoder_head`` (an mmdet anchor head on the
    memory, e.g. ``ATSSHead``) in training and at test time and passes its
    dense proposals: every anchor's decoded box and score. The N best of
    each image become the queries' 4-D anchor boxes (detached, as
    :class:`PluginAnchorBoxQueries`' learned ones: position from the box's
    sine encoding, the head refining all four coordinates), while each
    query's content stays a learned embedding (DINO's choice). With query
    groups every group starts from the same N boxes with its own contents.
    The decoder then starts from boxes the dense head has already found,
    instead of from boxes learned for the whole data set.

    Args:
        num_queries, embed_dims, num_groups, positional_encoding, init_cfg:
            as :class:`PluginAnchorBoxQueries` (without learned anchors).
    """

    takes_proposals = True

    def __init__(self, num_queries: int = 100, embed_dims: int = 256, num_groups: int = 1,
                 positional_encoding: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(num_queries, embed_dims, num_groups, positional_encoding, init_cfg)
        del self.anchors  # the boxes come from the proposals

    def init_weights(self) -> None:
        BaseModule.init_weights(self)

    def forward(self, memory: Tensor, batch_data_samples: OptSampleList = None,
                proposals: Dict[str, Tensor] = None) -> Tuple[Dict, Dict]:
        """Queries for a batch.

        Args:
            memory (Tensor): [B, S, d] encoder output.
            batch_data_samples (list[DetDataSample], optional): unused here.
            proposals (dict): ``boxes`` [B, P, 4] normalised cxcywh and
                ``scores`` [B, P] (P >= N), from ``PluginDETR``.

        Returns:
            tuple[dict, dict]: as :class:`PluginDETRQueries`, with
            ``references`` [B, Q, 4], the selected boxes, for the head.
        """
        if proposals is None:
            raise ValueError('PluginProposalQueries needs proposals: set model.encoder_head '
                             "to an anchor head on the memory (e.g. type='ATSSHead')")
        boxes, scores = proposals['boxes'].detach(), proposals['scores'].detach()
        if boxes.shape[1] < self.num_queries:
            raise ValueError(f'model.encoder_head gives {boxes.shape[1]} proposals per image, '
                             f'fewer than model.num_queries ({self.num_queries}): lower '
                             'num_queries or give the head more anchors per cell')
        keep = scores.topk(self.num_queries, dim=1).indices  # [B, N]
        refs = boxes.gather(1, keep[..., None].expand(-1, -1, 4))  # [B, N, 4]
        groups = self.num_groups if self.training else 1
        refs = refs.repeat(1, groups, 1).to(memory.dtype)  # [B, G * N, 4]
        query_pos = self.pos_mlp(self.encode_boxes(refs).to(memory.dtype))
        content = self.embedding.weight[:groups * self.num_queries].to(memory.dtype)
        decoder_inputs = dict(query=content.unsqueeze(0).expand(memory.size(0), -1, -1),
                              query_pos=query_pos)
        head_inputs = dict(references=refs)
        if groups > 1:
            decoder_inputs['self_attn_mask'] = group_attention_mask(
                groups, self.num_queries, memory.device)
            head_inputs['num_query_groups'] = groups
        return decoder_inputs, head_inputs


@MODELS.register_module()
class PluginPatchQueries(PluginDETRQueries):
    """UP-DETR's patch queries (Dai et al. 2021, section 3): pre-training by
    random query patches.

    Each image comes with M patches cropped from it, and ``PluginUPDETR``
    passes their pooled backbone features [B, M, C]. Patch j feeds the
    contiguous group of N / M queries ``j * N / M ... (j + 1) * N / M - 1``:
    ``patch2query`` (C -> d) maps its feature, which is added to those
    queries' learned position embeddings, while the decoder's content input
    stays zeros. The decoder must then find where each patch lies.

    * **Multi-query localisation**: a query attends only to the queries of
      its own patch (``self_attn_mask`` of M groups of N / M, for any N that
      M divides).
    * **Patch-feature dropout**: in training each query's patch feature is
      zeroed with probability ``feature_dropout`` (0.1).
    * **Query shuffle** (``shuffle=True``): in training the N position
      embeddings are permuted at random each step before the patch features
      are added, so no embedding is tied to one group. Off by default, as
      the reference release.

    Args:
        num_queries (int): N. ``PluginDETR`` fills it in. Defaults to 100.
        embed_dims (int): d. ``PluginDETR`` fills it in. Defaults to 256.
        num_patches (int): M patches per image; must divide N. Defaults to 10.
        feature_channels (int): C, the channels of the backbone's last output
            (2048 for ResNet-50). Defaults to 2048.
        feature_dropout (float): Defaults to 0.1.
        shuffle (bool): query shuffle. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, num_queries: int = 100, embed_dims: int = 256, num_patches: int = 10,
                 feature_channels: int = 2048, feature_dropout: float = 0.1,
                 shuffle: bool = False, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(num_queries, embed_dims, 1, init_cfg=init_cfg)
        if not isinstance(num_patches, int) or num_patches < 1:
            raise ValueError(f'model.queries.num_patches must be a positive int, '
                             f'got {num_patches!r}')
        if num_queries % num_patches:
            raise ValueError(
                f'model.queries.num_patches ({num_patches}) must divide model.num_queries '
                f'({num_queries}): each patch feeds a group of num_queries / num_patches '
                'queries')
        if not 0 <= feature_dropout < 1:
            raise ValueError(f'model.queries.feature_dropout must be in [0, 1), '
                             f'got {feature_dropout!r}')
        self.num_patches = num_patches
        self.feature_channels = feature_channels
        self.feature_dropout = feature_dropout
        self.shuffle = shuffle
        self.patch2query = nn.Linear(feature_channels, embed_dims)

    takes_denoising = False  # its queries stand for patches, not boxes

    def forward(self, memory: Tensor, batch_data_samples: OptSampleList = None,
                patch_features: Tensor = None) -> Tuple[Dict, Dict]:
        """Queries for a batch.

        Args:
            memory (Tensor): [B, S, d] encoder output.
            batch_data_samples (list[DetDataSample], optional): unused here.
            patch_features (Tensor): [B, M, C] pooled backbone features of
                each image's patches, in the order of its patch boxes.

        Returns:
            tuple[dict, dict]: decoder inputs ``query`` (zeros), ``query_pos``
            [B, N, d] and ``self_attn_mask`` [N, N] (when M > 1); no head
            inputs.
        """
        if patch_features is None:
            raise ValueError('PluginPatchQueries needs the patch features: use it in '
                             'PluginUPDETR, whose data carry query patches')
        batch_size, num_patches = patch_features.shape[:2]
        if num_patches != self.num_patches:
            raise ValueError(f'the data carry {num_patches} query patches per image, '
                             f'model.queries.num_patches is {self.num_patches}: set both '
                             'to the same number (PluginRandomQueryPatches.num_patches)')
        per_patch = self.num_queries // self.num_patches
        pos = self.embedding.weight  # [N, d]
        if self.training and self.shuffle:
            pos = pos[torch.randperm(self.num_queries, device=pos.device)]
        feats = self.patch2query(patch_features.to(pos.dtype))  # [B, M, d]
        feats = feats.repeat_interleave(per_patch, dim=1)  # [B, N, d], patch j -> group j
        if self.training and self.feature_dropout > 0:
            keep = torch.rand(batch_size, self.num_queries, 1, device=feats.device)
            feats = feats * (keep >= self.feature_dropout).to(feats.dtype)
        query_pos = (pos.unsqueeze(0) + feats).to(memory.dtype)
        decoder_inputs = dict(query=torch.zeros_like(query_pos), query_pos=query_pos)
        if self.num_patches > 1:
            decoder_inputs['self_attn_mask'] = group_attention_mask(
                self.num_patches, per_patch, memory.device)
        return decoder_inputs, {}

    def extra_repr(self) -> str:
        return (f'num_queries={self.num_queries}, num_patches={self.num_patches}, '
                f'feature_dropout={self.feature_dropout}, shuffle={self.shuffle}')
