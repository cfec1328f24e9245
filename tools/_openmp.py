"""OpenMP's wait policy for the tools' processes, set before torch loads OpenMP.

By default an OpenMP thread that finishes its share of a parallel region
spins for a while, waiting for the next one. That pays on an idle machine and
costs dearly on a shared one: when another process (a second training job,
or the data loader's own workers) holds the cores, the spinning threads take
the time slices their partners need to finish, and every parallel region
waits for a descheduled thread. Two ``tools/train.py`` runs of the toy config
at once on 2 cores took 3.4-3.7 s per iteration each (0.23 alone), mmdet's
own DETR narrowed alike 3.5 s (0.18-0.24 alone); with the passive policy
(threads sleep when idle) 0.29-0.30 and 0.25-0.26 s, and alone about the same
as before (0.21-0.27 s, both models, the spread of this machine). A shorter
spin (``GOMP_SPINCOUNT=10000``) left the pairs at 0.70-0.84 s.

So the tools ask for the passive policy unless the environment already sets
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``. OpenMP reads them once, when torch
loads it: import this module, and call :func:`passive_wait_policy`, before
anything imports torch.
"""
import os


def passive_wait_policy() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` for this process and its children, unless
    the environment chose a policy or a spin count."""
    if 'OMP_WAIT_POLICY' not in os.environ and 'GOMP_SPINCOUNT' not in os.environ:
        os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'
