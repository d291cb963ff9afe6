"""``tf.data`` over a :class:`~pitfall.loaders.core.Loader` (imports TensorFlow when used)."""

from __future__ import annotations

from typing import Any

from pitfall._logs import native_stderr_silenced

__all__ = ["output_signature", "tf_dataset"]


def output_signature(loader: Any) -> tuple[dict[str, Any], Any]:
    """``tf.TensorSpec`` of a loader's batches: ``({input: (b, *shape)}, (b,))``, float32.

    ``b`` is the batch size when every batch has it (balanced loaders), else None (the last
    batch of an unbalanced epoch is short). A static batch size lets TensorFlow plan the
    model's graph for one shape, as it does for ``train_on_batch`` on numpy arrays (a
    convolutional model trains faster on CPU than with an unknown batch size).
    """
    with native_stderr_silenced():  # its oneDNN notice, printed at import
        import tensorflow as tf

    b = loader.batch_size if loader.balanced else None
    x = {
        name: tf.TensorSpec((b, *shape), tf.float32, name=name)
        for name, shape in loader.input_shapes().items()
    }
    return x, tf.TensorSpec((b,), tf.float32, name="y")


def tf_dataset(
    loader: Any, *, epochs: int | None = 1, start: int = 0, prefetch: int | None = -1
) -> Any:
    """A ``tf.data.Dataset`` of a loader's batches ``(x, y)``.

    Parameters
    ----------
    loader
        A :class:`~pitfall.loaders.core.Loader`.
    epochs
        Epochs ``start, start + 1, ...`` one after the other, ``epochs`` of them (None: without
        end, for ``model.fit(..., steps_per_epoch=len(loader))``, which then draws epoch
        ``e`` of the loader in its epoch ``e``).
    start
        First epoch.
    prefetch
        Batches prepared ahead by ``tf.data`` (``-1``: ``tf.data.AUTOTUNE``; None: none).

    Returns
    -------
    tf.data.Dataset
        Elements ``(x, y)``: ``x`` a dict of float32 tensors ``(b, ...)`` keyed by input
        (``sequence``, ``signal``, ``random``: the names of the models' Keras inputs), ``y``
        float32 ``(b,)``. Iterating it again starts again from ``start``.
    """
    import weakref

    import tensorflow as tf

    # TensorFlow keeps every from_generator generator in a process-wide registry after its
    # dataset is gone: holding the loader there kept it for the life of the process, with
    # its chunk cache and the model whose target it calls (a sweep worker kept every model
    # it trained). The generator holds it weakly; the dataset (and so its iterators) holds
    # it.
    ref = weakref.ref(loader)

    def batches() -> Any:
        live = ref()
        if live is None:  # pragma: no cover - unreachable: the dataset being read holds it
            raise RuntimeError("the Loader of this tf.data.Dataset was garbage-collected")
        yield from live.stream(epochs, start)

    ds = tf.data.Dataset.from_generator(batches, output_signature=output_signature(loader))
    if prefetch is not None:
        ds = ds.prefetch(tf.data.AUTOTUNE if prefetch == -1 else prefetch)
    ds._pitfall_loader = loader
    return ds
