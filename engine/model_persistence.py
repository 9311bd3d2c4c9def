"""The model's persistence: its model file (save, load), its metadata and its ONNX export,
as methods of `MLP` (engine/model.py) through this mixin; the file format itself is
engine/model_file.py's."""
from __future__ import annotations

from ._version import __version__
from .errors import ModelFileError
from .model_file import FORMAT_VERSION, read_model, restore_training_state, save_model


class Persistence:
    def metadata(self, **extra):
        """What a model file records about this model (architecture, dtype, seed, ...),
        with `extra` entries."""
        meta = {"format_version": FORMAT_VERSION, "engine_version": __version__,
                "layer_sizes": self.layer_sizes, "hidden_activation": self.hidden_activation,
                "output_activation": self.output_activation, "loss": self.loss,
                "dtype": self.dtype.name, "seed": self.seed, "init": self.init,
                "init_scale": self.init_scale, "backend": self.backend.name,
                "precision": self.precision}
        meta.update(extra)
        return meta

    def save(self, path):
        """Write a portable .npz (weights, biases, metadata, the optimizer's state and the
        shuffling RNG's, so that a loaded model trains on as this one would); atomically.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        OSError
            The file cannot be written (a folder, a device node, no permission); whatever
            was at `path` before is left as it was.

        Examples
        --------
        >>> import os, tempfile, engine
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> engine.MLP([4, 3, 2], backend="numpy").save(path)
        >>> engine.MLP.load(path, backend="numpy").layer_sizes
        [4, 3, 2]
        """
        with self._lock:
            save_model(self, path)

    def export_onnx(self, path, opset=17):
        """Write this model as an ONNX graph (float32: Gemm + activation nodes; outputs
        "label" and "probabilities"; engine/onnx_export.py) for onnxruntime and other ONNX
        runtimes.

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically.
        opset : int, default=17
            The ONNX opset (13 or later).

        Raises
        ------
        ImportError
            The onnx package is missing (the [onnx] extra).
        ValueError
            An opset below 13.

        Examples
        --------
        >>> import os, tempfile, engine
        >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        >>> engine.MLP([4, 3, 2], backend="numpy").export_onnx(path)  # doctest: +SKIP
        """
        from .onnx_export import export_onnx
        with self._lock:
            export_onnx(self, path, opset)

    @classmethod
    def load(cls, path, *, backend="auto", verify=True):
        """A model saved by `save`, on the given backend.

        Parameters
        ----------
        path : str or os.PathLike
        backend : str or Backend, default="auto"
        verify : bool, default=True
            Check the file's digest (weights, optimizer state and metadata); files of the
            formats before 4 carry no digest of their whole content and load only with
            verify=False (a warning says so; save the model again to upgrade the file).

        Returns
        -------
        MLP

        Raises
        ------
        engine.ModelFileError
            For any problem with the file (missing, damaged, altered, another format).

        Examples
        --------
        >>> import engine
        >>> engine.MLP.load("no/such/file.npz")
        Traceback (most recent call last):
        ...
        engine.errors.ModelFileError: no/such/file.npz: no such file
        """
        meta, weights, biases, state = read_model(path, verify=verify)
        try:
            model = cls(meta["layer_sizes"], meta["hidden_activation"],
                        meta["output_activation"], meta["loss"], dtype=meta["dtype"],
                        backend=backend, seed=meta["seed"], init=meta["init"],
                        init_scale=meta["init_scale"], precision=meta.get("precision"),
                        _weights=(weights, biases))
            restore_training_state(model, meta, state)
        except ModelFileError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        return model
