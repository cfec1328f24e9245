"""Find the checkpoint to resume from, skipping incomplete files.

mmengine's ``CheckpointHook`` writes ``iter_N.pth`` in place and then
records its name in ``work_dir/last_checkpoint``. A job killed while
writing leaves a truncated file (and possibly a truncated pointer), which
mmengine's ``--resume`` would then try to load. :func:`find_resumable_checkpoint`
takes the pointer's target if that file is complete, else the newest
complete ``iter_*.pth`` / ``epoch_*.pth`` of the work dir.
"""
import glob
import os.path as osp
import re
import zipfile
from typing import List, Optional


def is_complete_checkpoint(path: str) -> bool:
    """True for a torch checkpoint whose zip archive is whole (central
    directory present, every member's CRC correct)."""
    if not osp.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _numbered_checkpoints(work_dir: str) -> List[str]:
    """``iter_*.pth`` and ``epoch_*.pth`` of ``work_dir``, newest step first."""
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = re.fullmatch(r'(iter|epoch)_(\d+)\.pth', osp.basename(path))
        if match:
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [p for _, _, p in sorted(found, reverse=True)]


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir``, or None."""
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            recorded = f.read().strip()
        if recorded:
            candidates.append(recorded)
    candidates += _numbered_checkpoints(work_dir)
    for path in candidates:
        if is_complete_checkpoint(path):
            return path
    return None
