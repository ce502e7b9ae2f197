"""Flavors: how each kind of model is saved, loaded and asked for predictions.

A flavor is stored with every model version under a stable name (``"sklearn"``,
``"xgboost"``, ``"lightgbm"``, ``"onnx"``, ``"pyfunc"``), never an import path, so
stored versions survive refactors. Each flavor writes its model into an empty
folder in the library's own format:

==========  ==========================================================================
flavor      files
==========  ==========================================================================
sklearn     ``model.skops`` (skops, no pickle)
xgboost     ``model.ubj`` (XGBoost's UBJSON) + ``xgboost.json`` (the wrapper class)
lightgbm    ``model.txt`` (LightGBM's text format) + ``lightgbm.json`` (the wrapper
            class and, for classifiers, the class labels)
onnx        ``model.onnx`` + ``onnx.json`` (how inputs are fed; see :mod:`._onnx`)
pyfunc      ``model.pkl`` (cloudpickle): *executable*, loading runs pickled code
==========  ==========================================================================

:func:`flavor_for` picks the first flavor whose ``handles`` accepts a model, in
the order above with ``pyfunc`` last: XGBoost and LightGBM wrappers are also
scikit-learn estimators, and anything with ``predict`` is a ``pyfunc``.
``handles`` never imports a library: a model cannot be an XGBoost model unless
``xgboost`` is already in :data:`sys.modules`.

``predict`` returns a 1-D array for single-output models; ``predict_proba`` a
2-D array (one column per class, in the model's class order) or None when the
model has none. A model fitted on an array (no feature names) is given the
frame's values, so it sees what it was fitted on.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from loopml._skops import load_skops
from loopml.errors import ModelError
from loopml.registry._onnx import OnnxFlavor, OnnxModel, convert_to_onnx
from loopml.registry._paths import model_file

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

__all__ = [
    "FLAVORS",
    "Flavor",
    "LightGBMClassifierModel",
    "LightGBMFlavor",
    "LightGBMModel",
    "OnnxFlavor",
    "OnnxModel",
    "PyfuncFlavor",
    "SklearnFlavor",
    "XGBoostFlavor",
    "convert_to_onnx",
    "flavor_for",
    "get_flavor",
]


class Flavor(Protocol):
    """How one kind of model is stored and run.

    Attributes:
        name: the stable alias stored with the version.
        executable: whether loading runs arbitrary code (pickles).
    """

    name: str
    executable: bool

    def handles(self, model: object) -> bool:
        """Whether this flavor can store ``model`` (cheap; imports nothing)."""
        ...

    def save(self, model: object, folder: Path) -> None:
        """Write ``model`` into the empty ``folder``."""
        ...

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """Read the model back from ``folder`` (which may be deleted afterwards).

        ``trusted_types`` names types the caller trusts beyond the flavor's own
        allow-list; only flavors whose files name the types to build (skops) use it.
        """
        ...

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """Predictions for every row of ``frame``."""
        ...

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """Class probabilities for every row of ``frame``, or None when there are none."""
        ...


# --- helpers -------------------------------------------------------------------------


def _loaded(name: str) -> Any:
    """The module ``name`` if the process has imported it, else None (never imports)."""
    return sys.modules.get(name)


def _require(module: str, flavor: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"The {flavor} flavor needs {module}; install it with 'pip install loopml[{extra}]'."
        ) from exc


def _file(folder: Path, name: str, flavor: str) -> Path:
    return model_file(folder, name, f"a file of the {flavor} flavor")


def _write_meta(folder: Path, name: str, meta: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def _read_meta(folder: Path, name: str, flavor: str) -> dict[str, Any]:
    meta = json.loads(_file(folder, name, flavor).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ModelError(f"{folder / name} is not a {flavor} model description.")
    return meta


def _model_input(model: object, frame: pd.DataFrame) -> Any:
    """``frame``, or its values when the model was fitted on an array (no feature names)."""
    if getattr(model, "feature_names_in_", None) is None and hasattr(model, "n_features_in_"):
        return frame.to_numpy()
    return frame


def _as_output(values: object) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        return array.ravel()
    return array


def _known_class(model: object, module: Any, names: tuple[str, ...]) -> str:
    """The nearest class of ``model`` among ``module``'s ``names`` (its MRO order)."""
    known = {getattr(module, n): n for n in names if hasattr(module, n)}
    for cls in type(model).__mro__:
        if cls in known:
            return known[cls]
    raise ModelError(f"{type(model).__qualname__} is none of {', '.join(names)}.")


def _proba_of(model: object, data: Any) -> NDArray[Any] | None:
    method = getattr(model, "predict_proba", None)
    return None if method is None else np.asarray(method(data))


# --- scikit-learn --------------------------------------------------------------------


class SklearnFlavor:
    """scikit-learn estimators (with ``predict``) → skops.

    Loading trusts a fixed allow-list of types (skops' defaults plus the
    scikit-learn classes, NumPy/SciPy types and pure functions real estimators
    are made of; see :mod:`loopml._skops`), never the list the file itself
    declares: a file naming any other type is refused before anything is built.
    More types are trusted only when the caller names them (``trusted_types``
    or ``LOOPML_TRUSTED_TYPES``).
    """

    name = "sklearn"
    executable = False

    def handles(self, model: object) -> bool:
        """Fitted or not, any ``BaseEstimator`` with ``predict`` that is not XGBoost/LightGBM."""
        base = _loaded("sklearn.base")
        return (
            base is not None
            and isinstance(model, base.BaseEstimator)
            and hasattr(model, "predict")
            and not XGBoostFlavor().handles(model)
            and not LightGBMFlavor().handles(model)
        )

    def save(self, model: object, folder: Path) -> None:
        """Write ``model.skops``.

        Raises:
            ModelError: skops cannot store the estimator.
        """
        skops_io = _require("skops.io", self.name, "sklearn")
        try:
            skops_io.dump(model, folder / "model.skops")
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"skops cannot store {type(model).__qualname__} ({exc}); wrap the model in a "
                "class with predict to store it as a pyfunc (cloudpickle) instead."
            ) from exc

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """Read ``model.skops``, trusting only the allow-list and ``trusted_types``.

        Raises:
            UntrustedTypesError: the file names a type outside both (it names them).
        """
        _require("skops.io", self.name, "sklearn")
        path = _file(folder, "model.skops", self.name)
        return load_skops(path, f"the scikit-learn model in {folder}", trusted_types)

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """``model.predict``, 1-D for a single output."""
        return _as_output(model.predict(_model_input(model, frame)))  # type: ignore[attr-defined]

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """``model.predict_proba``, or None when the estimator has none."""
        return _proba_of(model, _model_input(model, frame))


# --- XGBoost -------------------------------------------------------------------------

_XGB_CLASSES = (
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBModel",
    "Booster",
)


class XGBoostFlavor:
    """XGBoost scikit-learn wrappers and ``Booster`` → ``model.ubj``.

    ``xgboost.json`` names the class to restore (``XGBClassifier``,
    ``XGBRegressor``, … or ``Booster``); a subclass of one of them is restored as
    that class. A ``Booster`` has no ``predict_proba``: its ``predict`` gives
    what its objective gives (probabilities for ``binary:logistic``).
    """

    name = "xgboost"
    executable = False

    def handles(self, model: object) -> bool:
        """Whether ``model`` is an ``xgboost.XGBModel`` or ``xgboost.Booster``."""
        xgb = _loaded("xgboost")
        return xgb is not None and isinstance(model, (xgb.XGBModel, xgb.Booster))

    def save(self, model: object, folder: Path) -> None:
        """Write ``model.ubj`` and ``xgboost.json``."""
        xgb = _require("xgboost", self.name, "xgboost")
        cls = _known_class(model, xgb, _XGB_CLASSES)
        model.save_model(folder / "model.ubj")  # type: ignore[attr-defined]
        _write_meta(
            folder,
            "xgboost.json",
            {"class": cls, "file": "model.ubj", "xgboost_version": xgb.__version__},
        )

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """Restore the stored class from the file ``xgboost.json`` names."""
        xgb = _require("xgboost", self.name, "xgboost")
        meta = _read_meta(folder, "xgboost.json", self.name)
        cls = meta.get("class")
        if cls not in _XGB_CLASSES:
            raise ModelError(f"{folder / 'xgboost.json'} names an unknown XGBoost class {cls!r}.")
        path = model_file(folder, meta.get("file", "model.ubj"), "'file' of xgboost.json")
        if cls == "Booster":
            return xgb.Booster(model_file=str(path))
        model = getattr(xgb, cls)()
        model.load_model(path)
        return model

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """``model.predict`` (a ``Booster`` is given a ``DMatrix``), 1-D for a single output."""
        xgb = _require("xgboost", self.name, "xgboost")
        if isinstance(model, xgb.Booster):
            data = frame if model.feature_names is not None else frame.to_numpy()
            return _as_output(model.predict(xgb.DMatrix(data)))
        return _as_output(model.predict(_model_input(model, frame)))  # type: ignore[attr-defined]

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """``predict_proba`` of classifiers; None for regressors, rankers and boosters."""
        return _proba_of(model, _model_input(model, frame))


# --- LightGBM ------------------------------------------------------------------------

_LGBM_CLASSES = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel", "Booster")


class LightGBMModel:
    """A LightGBM scikit-learn model restored from its booster (what the flavor loads).

    LightGBM's native format holds the booster only, so the wrapper is rebuilt
    around it: ``predict`` gives what the original wrapper's ``predict`` gave.

    Attributes:
        booster: the ``lightgbm.Booster`` read from ``model.txt``.
        estimator_class: the original wrapper's class name (``"LGBMRegressor"`` …).
    """

    def __init__(self, booster: Any, estimator_class: str) -> None:
        self.booster = booster
        self.estimator_class = estimator_class

    def predict(self, data: Any) -> NDArray[Any]:
        """The booster's predictions."""
        return np.asarray(self.booster.predict(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.estimator_class})"


class LightGBMClassifierModel(LightGBMModel):
    """A restored ``LGBMClassifier``: class labels and probabilities as the original gave.

    Attributes:
        classes_: the class labels, in the order of ``predict_proba``'s columns.
    """

    def __init__(self, booster: Any, estimator_class: str, classes: NDArray[Any]) -> None:
        super().__init__(booster, estimator_class)
        self.classes_ = classes

    def predict_proba(self, data: Any) -> NDArray[Any]:
        """One column per class (a binary booster's single probability is split in two)."""
        proba = np.asarray(self.booster.predict(data))
        if proba.ndim == 1:
            return np.vstack((1.0 - proba, proba)).T
        return proba

    def predict(self, data: Any) -> NDArray[Any]:
        """The most probable class label of each row."""
        result: NDArray[Any] = self.classes_[np.argmax(self.predict_proba(data), axis=1)]
        return result


class LightGBMFlavor:
    """LightGBM scikit-learn wrappers and ``Booster`` → ``model.txt``.

    ``lightgbm.json`` holds the wrapper's class name and a classifier's class
    labels (with their dtype). Wrappers load as :class:`LightGBMModel` /
    :class:`LightGBMClassifierModel` around ``lightgbm.Booster(model_file=...)``;
    a saved ``Booster`` loads as a ``Booster``. The booster is saved at its best
    iteration when early stopping found one, which is what the wrapper predicts with.
    """

    name = "lightgbm"
    executable = False

    def handles(self, model: object) -> bool:
        """Whether ``model`` is a LightGBM wrapper, ``Booster`` or a model this flavor loaded."""
        if isinstance(model, LightGBMModel):
            return True
        lgb = _loaded("lightgbm")
        return lgb is not None and isinstance(model, (lgb.LGBMModel, lgb.Booster))

    def save(self, model: object, folder: Path) -> None:
        """Write ``model.txt`` and ``lightgbm.json``.

        Raises:
            ModelError: the wrapper is not fitted.
        """
        lgb = _require("lightgbm", self.name, "lightgbm")
        classes: NDArray[Any] | None
        if isinstance(model, LightGBMModel):
            booster, cls = model.booster, model.estimator_class
            classes = getattr(model, "classes_", None)
        else:
            cls = _known_class(model, lgb, _LGBM_CLASSES)
            try:
                booster = model if cls == "Booster" else model.booster_  # type: ignore[attr-defined]
            except AttributeError as exc:  # LightGBM's NotFittedError is one
                raise ModelError(f"Cannot store an unfitted {cls}: fit it first.") from exc
            classes = getattr(model, "classes_", None) if cls == "LGBMClassifier" else None
        booster.save_model(str(folder / "model.txt"))
        meta: dict[str, Any] = {"class": cls, "lightgbm_version": lgb.__version__}
        if classes is not None:
            meta["classes"] = np.asarray(classes).tolist()
            meta["classes_dtype"] = np.asarray(classes).dtype.str
        _write_meta(folder, "lightgbm.json", meta)

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """The booster, wrapped as the stored class (see the class docstring)."""
        lgb = _require("lightgbm", self.name, "lightgbm")
        meta = _read_meta(folder, "lightgbm.json", self.name)
        cls = meta.get("class")
        if cls not in _LGBM_CLASSES:
            raise ModelError(f"{folder / 'lightgbm.json'} names an unknown LightGBM class {cls!r}.")
        booster = lgb.Booster(model_file=str(_file(folder, "model.txt", self.name)))
        if cls == "Booster":
            return booster
        if "classes" in meta:
            dtype = np.dtype(meta["classes_dtype"])
            classes = np.empty(len(meta["classes"]), dtype=dtype)
            classes[:] = meta["classes"]
            return LightGBMClassifierModel(booster, cls, classes)
        return LightGBMModel(booster, cls)

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """``model.predict``, 1-D for a single output."""
        return _as_output(model.predict(_model_input(model, frame)))  # type: ignore[attr-defined]

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """Class probabilities of classifiers; None otherwise."""
        return _proba_of(model, _model_input(model, frame))


# --- pyfunc --------------------------------------------------------------------------


class PyfuncFlavor:
    """Any object with ``predict`` → cloudpickle (the catch-all).

    *Executable*: loading unpickles, which runs whatever code the pickle names,
    so the registry loads a pyfunc only when it trusts where the version came
    from. The classes the object needs must be importable where it is loaded,
    unless they were defined in ``__main__`` (cloudpickle stores those by value).
    """

    name = "pyfunc"
    executable = True

    def handles(self, model: object) -> bool:
        """Whether ``model`` is an instance with a callable ``predict``."""
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def save(self, model: object, folder: Path) -> None:
        """Write ``model.pkl`` with cloudpickle.

        Raises:
            ModelError: the object cannot be pickled.
        """
        cloudpickle = _require("cloudpickle", self.name, "pyfunc")
        try:
            data = cloudpickle.dumps(model)
        except Exception as exc:  # pickling fails in many ways (locks, sockets, generators …)
            raise ModelError(f"cloudpickle cannot store {type(model).__qualname__}: {exc}") from exc
        (folder / "model.pkl").write_bytes(data)

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """Unpickle ``model.pkl`` (runs code: the caller decides whether to trust it)."""
        import pickle

        data = _file(folder, "model.pkl", self.name).read_bytes()
        return pickle.loads(data)  # noqa: S301 -- executable flavor, gated by the registry's trust check

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """``model.predict(frame)``, 1-D for a single output."""
        return _as_output(model.predict(frame))  # type: ignore[attr-defined]

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """``model.predict_proba(frame)``, or None when the object has none."""
        return _proba_of(model, frame)


# --- look-up -------------------------------------------------------------------------

FLAVORS: tuple[Flavor, ...] = (
    XGBoostFlavor(),
    LightGBMFlavor(),
    OnnxFlavor(),
    SklearnFlavor(),
    PyfuncFlavor(),
)
_BY_NAME: dict[str, Flavor] = {f.name: f for f in FLAVORS}


def flavor_for(model: object) -> Flavor:
    """The flavor that stores ``model``: the first of :data:`FLAVORS` that handles it.

    Args:
        model: a fitted model.

    Returns:
        The flavor.

    Raises:
        ModelError: no flavor handles the model (it names the type).

    Example:
        >>> from sklearn.linear_model import LinearRegression
        >>> flavor_for(LinearRegression()).name
        'sklearn'
    """
    for flavor in FLAVORS:
        if flavor.handles(model):
            return flavor
    kind = type(model)
    hint = (
        f"pass a fitted instance, not the class {model.__qualname__}"
        if isinstance(model, type)
        else "a model needs a predict method"
    )
    raise ModelError(
        f"No flavor can store a {kind.__module__}.{kind.__qualname__}: {hint} "
        f"(flavors: {', '.join(_BY_NAME)})."
    )


def get_flavor(name: str) -> Flavor:
    """The flavor stored under ``name``.

    Raises:
        ModelError: no flavor has that name.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ModelError(
            f"Unknown model flavor {name!r}; known flavors: {', '.join(sorted(_BY_NAME))}."
        ) from None
