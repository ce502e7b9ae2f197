"""A loaded model version: ``predict`` and ``predict_proba`` that check their input first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.registry._records import ModelVersion
from loopml.registry._signature import as_frame

if TYPE_CHECKING:
    import numpy as np

    from loopml.registry._flavors import Flavor

__all__ = ["LoadedModel"]


class LoadedModel:
    """A model version ready to predict.

    Inputs (a DataFrame, a dict of columns, a list of records or a 2-D array) are
    checked against the version's signature: a missing column, a wrong type or a
    null where none is allowed raises :class:`~loopml.errors.SignatureError` naming
    the column and the expected type.

    Attributes:
        version: the registry record this model came from.
        native: the flavor's own model object (scikit-learn estimator, XGBoost model …).
    """

    def __init__(self, version: ModelVersion, flavor: Flavor, native: Any) -> None:
        self.version = version
        self.native = native
        self._flavor = flavor

    @property
    def signature(self) -> Any:
        """The version's :class:`~loopml.registry.Signature`, or None."""
        return self.version.signature

    def prepare(self, data: Any) -> Any:
        """Turn ``data`` into the checked DataFrame the model is given."""
        frame = as_frame(data, self.signature)
        return self.signature.enforce(frame) if self.signature is not None else frame

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for every row of ``data``.

        Raises:
            SignatureError: the input does not match the signature.
        """
        return self._flavor.predict(self.native, self.prepare(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities for every row of ``data``.

        Raises:
            SignatureError: the input does not match the signature.
            ModelError: the flavor or model has no probabilities.
        """
        from loopml.errors import ModelError

        proba = self._flavor.predict_proba(self.native, self.prepare(data))
        if proba is None:
            raise ModelError(
                f"Model {self.version.ref} ({self.version.flavor}) has no predict_proba."
            )
        return proba

    @property
    def has_proba(self) -> bool:
        """Whether :meth:`predict_proba` is available."""
        native_says = getattr(self.native, "has_proba", None)
        if isinstance(native_says, bool):
            return native_says
        return hasattr(self.native, "predict_proba")

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.ref}, flavor={self.version.flavor!r})"
