"""Seeing what units want: images that maximize a unit, a channel or a class.

- :func:`maximize` — activation maximization (Erhan et al. 2009, "Visualizing Higher-Layer
  Features of a Deep Network"; Yosinski et al. 2015, "Understanding Neural Networks Through
  Deep Visualization", sec. 3: L2 decay, Gaussian blur every few steps, clipping of pixels with
  small norm, jitter), with the α-norm and total-variation priors of Mahendran & Vedaldi 2015
  (eq. 3 and 5) as in keras-vis (gradient normalized by its RMS).
- :func:`filters` — many channels of one layer, maximized a batch at a time.
- :func:`class_model` — Simonyan, Vedaldi & Zisserman 2013, eq. (1):
  ``argmax_I S_c(I) − λ‖I‖²₂`` with ``S_c`` the pre-softmax class score.

Every value comes with its hand-written gradient (``Net.backward``); the loop, the priors and
the :class:`~nnviz.methods.optimize.Result` they return are in :mod:`nnviz.methods.optimize`.
"""
import numpy

from .. import backend, targets
from ..backend import get_array_module
from ..errors import BadTarget
from ..progress import progress_bar
from .optimize import Result, noise, regularizer_terms, run


def as_targets(target, net, n=None):
    """A list of :class:`nnviz.targets.Target` (one per image) on one layer, checked."""
    ts = list(target) if isinstance(target, (list,)) else [target]
    ts = [targets.parse(t) for t in ts]
    for t in ts:
        t.check(net)
    if n is not None and len(ts) == 1:
        ts = ts * n
    if len({t.layer for t in ts}) != 1:
        raise BadTarget(f"targets of one batch must share a layer, got {sorted({t.layer for t in ts})}")
    return ts


def target_objective(net, x, target):
    """Value ``(N,)`` and input gradient of each image's target: a class's pre-softmax score,
    a channel's activation averaged over positions (Keras' ``K.mean``; ``Target.score`` / (H·W)),
    or one unit's activation. ``target``: one target, or a list with one per image."""
    ts = as_targets(target, net, len(x))
    if len(ts) != len(x):
        raise BadTarget(f"{len(ts)} targets for a batch of {len(x)} images")
    layer = ts[0].layer
    act = net.forward(x, until=layer)
    xp = get_array_module(act)
    dy = xp.zeros_like(act)
    values = []
    for n, t in enumerate(ts):
        t.check(net, act.shape)
        if act.ndim == 2 or t.position is not None:
            idx = (n, t.channel) if act.ndim == 2 else (n, t.channel) + tuple(t.position)
            values.append(act[idx])
            dy[idx] = 1
        else:
            m = act.shape[2] * act.shape[3]
            values.append(act[n, t.channel].sum() / m)
            dy[n, t.channel] = 1.0 / m
    return xp.stack(values), net.backward(dy, start=layer)


def maximize(net, target, x0=None, size=None, steps=200, lr=2.0, lp=(6, 1.0), tv=(2, 0.5),
             l2=None, jitter=4, blur_every=None, blur_sigma=0.5, clip_small=None,
             optimizer="adam", grad_norm="rms", seed=None, snapshot_every=None,
             snapshot_path=None, callback=None, progress=True):
    """The image that maximizes ``target`` (a class, a channel, a unit; or a list of targets of
    one layer, one per image — many channels in one batch), regularized.

    Loss: ``−objective + lp_w · lp_norm_p(x) + tv_w · TV_β(x) + l2 · ‖x‖²`` (regularizers on
    images scaled to about [-1, 1]; ``lp=(p, weight)``, ``tv=(β, weight)``). ``x0``: a
    preprocessed batch to start from (default: grey plus noise of ``size``, 224 for a class and
    128 otherwise). ``lr`` in pixel levels. ``blur_every`` steps a Gaussian blur of
    ``blur_sigma``; ``clip_small``: a percentile of pixel norms to zero each step.
    Returns a :class:`~nnviz.methods.optimize.Result` (``x``, the images, the history of the
    objective and each term, ``message`` when an image stopped early).
    """
    probe = as_targets(target, net)
    n = len(probe) if x0 is None else len(x0)
    ts = as_targets(target, net, n)
    if x0 is None:
        size = size or (224 if ts[0].is_class else 128)
        x0 = noise(net, n, size, seed)
    x0 = backend.to_device(x0, net.device)
    terms = [("objective", -1.0, lambda x: target_objective(net, x, ts), True)]
    terms += regularizer_terms(net, lp, tv, l2)
    return run(net, x0, terms, steps=steps, lr=lr, optimizer=optimizer, grad_norm=grad_norm,
               jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma,
               clip_small=clip_small, seed=seed, snapshot_every=snapshot_every,
               snapshot_path=snapshot_path, callback=callback, progress=progress,
               desc=f"maximize {ts[0] if len(ts) == 1 else ts[0].layer}")


def filters(net, layer, channels=None, size=64, batch=16, progress=True, **kw):
    """Maximize many channels of ``layer`` (default: the first 16), ``batch`` at a time, one
    image per channel in one forward. Snapshot paths get the batch's number as ``batch``
    besides ``step``. Returns a :class:`~nnviz.methods.optimize.Result` with
    ``images`` uint8 (K, size, size, 3), ``labels`` (the channel, "stopped" when its image
    stopped early), ``stopped`` per channel and every batch's history (rows carry ``batch``)."""
    net.check_layer(layer)
    channels = [int(c) for c in (range(16) if channels is None else channels)]
    seed = kw.pop("seed", None)
    snapshots = kw.pop("snapshot_path", None)
    parts = []
    n_batches = -(-len(channels) // batch)
    # one progress for all batches: steps + 1 evaluations of each (the last is not a step)
    bar = progress_bar(n_batches * kw.get("steps", 200), f"filters {layer}", progress)
    for k, b in enumerate(range(0, len(channels), batch)):
        chunk = channels[b:b + batch]
        parts.append(maximize(net, [(layer, c) for c in chunk], size=size, progress=bar,
                              seed=None if seed is None else seed + b,
                              snapshot_path=_batch_snapshots(snapshots, k), **kw))
        if parts[-1].status == "interrupted":       # Ctrl-C: keep the batches done so far
            channels = channels[:b + len(chunk)]
            break
    bar.close()
    stopped = [s for r in parts for s in r.stopped]
    messages = list(dict.fromkeys(r.message for r in parts if r.message))
    return Result(net.xp.concatenate([r.x for r in parts]),
                  [dict(row, batch=k) for k, r in enumerate(parts) for row in r.history],
                  images=numpy.concatenate([r.images for r in parts]),
                  labels=[f"{c}" if s is None else f"{c} stopped" for c, s in zip(channels, stopped)],
                  status="interrupted" if parts[-1].status == "interrupted" else
                  "stopped" if any(s is not None for s in stopped) else "done",
                  message="; ".join(messages) or None, stopped=stopped,
                  seconds=sum(r.seconds for r in parts))


def _batch_snapshots(path, k):
    """Snapshot paths of batch ``k``: ``path`` (a function or a format string) given
    ``batch=k`` besides the step."""
    if path is None:
        return None
    return lambda step: path(step, batch=k) if callable(path) else path.format(step=step, batch=k)


def class_model(net, class_index, size=224, steps=200, lr=1.0, l2=1e-3, optimizer="sgd",
                grad_norm="rms", seed=None, **kw):
    """Simonyan et al. 2013, eq. (1): ``argmax_I S_c(I) − λ‖I‖²₂`` from the zero (mean) image,
    by gradient ascent; ``S_c`` is ``fc8``'s pre-softmax score. Needs the fully connected
    layers (a clear error on the default, convolutional-only weights). Returns a
    :class:`~nnviz.methods.optimize.Result` as :func:`maximize`."""
    t, = as_targets(("fc8", int(class_index)), net)
    x0 = kw.pop("x0", None)
    if x0 is None:
        x0 = net.xp.zeros((1, 3, size, size), numpy.float32)
    kw.setdefault("jitter", 0)
    return maximize(net, t, x0=x0, steps=steps, lr=lr, lp=None, tv=None, l2=l2,
                    optimizer=optimizer, grad_norm=grad_norm, seed=seed, **kw)
