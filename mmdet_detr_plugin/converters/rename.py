"""One rename table per checkpoint layout, read in both directions.

A converter between the plugin's state-dict names and another layout's
(mmdet's ``DETR``, the original release, transformers) is mostly a list of
renames. :class:`RenameTable` holds that list once, as pairs of name
patterns with named placeholders, and applies it either way, so the two
directions cannot drift apart. Steps that are not renames (splitting a
tensor, dropping a counter, remapping classifier rows) stay in the
converters, around the table.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

Value = TypeVar('Value')
# placeholder regexes the tables share: a parameter of a Linear, Conv2d or
# LayerNorm, and one of an attention with packed projections (torch's
# nn.MultiheadAttention names, kept by the plugin, mmdet and the release)
PARAM = r'weight|bias'
ATTN_PARAM = r'in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias'
# a placeholder in a pattern: '{name}'
_PLACEHOLDER = re.compile(r'\{(\w+)\}')


class _Pattern:
    """One side of a rule, e.g. ``'{coder}.layers.{i}.norm1.{tail}'``: a
    regex that captures the placeholders, and the inverse that writes them
    back in."""

    def __init__(self, text: str, placeholders: Mapping[str, str]) -> None:
        # even items of the split are literal text, odd ones placeholder names
        self.text = text
        self.parts = _PLACEHOLDER.split(text)
        self.names = self.parts[1::2]
        unknown = [n for n in self.names if n not in placeholders]
        if unknown:
            raise ValueError(f'pattern {text!r}: placeholder(s) {unknown} have no regex; '
                             f'known: {sorted(placeholders)}')
        if len(set(self.names)) != len(self.names):
            raise ValueError(f'pattern {text!r}: a placeholder appears twice')
        regex = ''.join(re.escape(part) if i % 2 == 0 else f'(?P<{part}>{placeholders[part]})'
                        for i, part in enumerate(self.parts))
        self.regex = re.compile(regex)

    def match(self, key: str) -> Optional[Dict[str, str]]:
        """The placeholders' values if ``key`` matches the whole pattern."""
        found = self.regex.fullmatch(key)
        return None if found is None else found.groupdict()

    def fill(self, values: Mapping[str, str]) -> str:
        """The pattern with each placeholder replaced by its value."""
        return ''.join(part if i % 2 == 0 else values[part] for i, part in enumerate(self.parts))


class RenameResult(NamedTuple):
    """What :meth:`RenameTable.rename` returns.

    Attributes:
        state_dict (OrderedDict[str, Value]): the renamed entries, in the
            input's order, values untouched (tensors shared).
        unmatched (list[str]): input keys that no rule and no shared name
            matches (left out of ``state_dict``).
    """
    state_dict: 'OrderedDict[str, Value]'
    unmatched: List[str]


class RenameTable:
    """Rename rules between the plugin's names and another layout's, written once.

    Each rule is a pair ``(plugin pattern, other pattern)``. A pattern is a
    key with placeholders ``{name}``; each placeholder's regex comes from
    ``placeholders``, and both sides of a rule use the same placeholders,
    so whatever one side captures, the other side writes back. A key is
    renamed by the first rule whose pattern (on the key's side) matches
    the *whole* key. ``shared`` patterns name keys that are the same in both
    layouts; they are tried after the rules. Keys that match nothing are
    reported, never kept silently.

    Example (two rules of the mmdet table)::

        >>> table = RenameTable(
        ...     [('{coder}.layers.{i}.ffn.linear1.{tail}',
        ...       '{coder}.layers.{i}.ffn.layers.0.0.{tail}'),
        ...      ('decoder.norm.{tail}', 'decoder.post_norm.{tail}')],
        ...     placeholders=dict(coder=r'(?:en|de)coder', i=r'\\d+', tail=r'.+'),
        ...     shared=['backbone.{tail}'])
        >>> table.to_other('encoder.layers.3.ffn.linear1.bias')
        'encoder.layers.3.ffn.layers.0.0.bias'
        >>> table.to_plugin('encoder.layers.3.ffn.layers.0.0.bias')
        'encoder.layers.3.ffn.linear1.bias'
        >>> table.to_plugin('decoder.post_norm.weight')
        'decoder.norm.weight'
        >>> table.to_other('backbone.layer1.0.conv1.weight')  # shared
        'backbone.layer1.0.conv1.weight'
        >>> print(table.to_other('neck.proj.weight'))  # no rule
        None
        >>> renamed, unmatched = table.rename(
        ...     {'decoder.norm.bias': 1, 'neck.proj.bias': 2}, to='other')
        >>> dict(renamed), unmatched
        ({'decoder.post_norm.bias': 1}, ['neck.proj.bias'])

    Args:
        rules (Sequence[tuple[str, str]]): ``(plugin pattern, other
            pattern)`` pairs, tried in order.
        placeholders (Mapping[str, str]): regex of each placeholder name,
            e.g. ``dict(i=r'\\d+', tail=r'.+')``.
        shared (Sequence[str]): patterns of keys named the same in both
            layouts. Defaults to none.

    Raises:
        ValueError: a placeholder without a regex, used twice in one
            pattern, or used on one side of a rule only.
    """

    def __init__(self, rules: Sequence[Tuple[str, str]], placeholders: Mapping[str, str],
                 shared: Sequence[str] = ()) -> None:
        self.placeholders = dict(placeholders)
        self.rules: Tuple[Tuple[str, str], ...] = tuple((p, o) for p, o in rules)
        self.shared: Tuple[str, ...] = tuple(shared)
        pairs = []
        for plugin, other in self.rules:
            a, b = _Pattern(plugin, self.placeholders), _Pattern(other, self.placeholders)
            if set(a.names) != set(b.names):
                raise ValueError(f'rule {plugin!r} <-> {other!r}: both sides must use the '
                                 f'same placeholders, got {a.names} and {b.names}')
            pairs.append((a, b))
        for text in self.shared:  # a shared name is a rule that keeps the key
            pattern = _Pattern(text, self.placeholders)
            pairs.append((pattern, pattern))
        self._pairs = pairs

    @staticmethod
    def _apply(key: str, pairs: List[Tuple[_Pattern, _Pattern]]) -> Optional[str]:
        """Rename by the first pair whose first pattern matches all of ``key``."""
        for source, target in pairs:
            values = source.match(key)
            if values is not None:
                return target.fill(values)
        return None

    def to_other(self, key: str) -> Optional[str]:
        """A plugin key in the other layout's names; None if nothing matches."""
        return self._apply(key, self._pairs)

    def to_plugin(self, key: str) -> Optional[str]:
        """A key of the other layout in the plugin's names; None if nothing matches."""
        return self._apply(key, [(b, a) for a, b in self._pairs])

    def rename(self, state_dict: Mapping[str, Value], to: str) -> RenameResult:
        """Rename every key of a state dict.

        Args:
            state_dict (Mapping[str, Value]): keys in the plugin's names
                (``to='other'``) or in the other layout's (``to='plugin'``).
            to (str): ``'other'`` or ``'plugin'``.

        Returns:
            RenameResult: the renamed entries (same order, same values) and
            the keys no rule matched.

        Raises:
            ValueError: ``to`` is neither, or two keys get the same new name.
        """
        if to not in ('other', 'plugin'):
            raise ValueError(f"to must be 'other' or 'plugin', got {to!r}")
        rename = self.to_other if to == 'other' else self.to_plugin
        out: 'OrderedDict[str, Value]' = OrderedDict()
        source_of: Dict[str, str] = {}
        unmatched = []
        for key, value in state_dict.items():
            new_key = rename(key)
            if new_key is None:
                unmatched.append(key)
                continue
            if new_key in out:
                raise ValueError(f'{source_of[new_key]!r} and {key!r} both become {new_key!r}')
            out[new_key] = value
            source_of[new_key] = key
        return RenameResult(out, unmatched)


def listed(keys: Sequence[str], limit: int = 10) -> str:
    """``keys`` for an error message: the first ``limit``, then ``...``."""
    return ', '.join(keys[:limit]) + (', ...' if len(keys) > limit else '')
