"""The schema of ``workflows/*.yaml``: a job is data -> preprocess -> model -> evaluate -> outputs.

Everything here is checked before any data is read: unknown keys, wrong types, missing
values (pydantic models that forbid extra keys), then the estimator's own parameter checks
(:mod:`daskcluster.jobs.registry`) against the data's metadata.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..locations import is_url

__all__ = [
    "DATA_KINDS",
    "METRICS",
    "BlobsData",
    "DataSpec",
    "EvaluateSpec",
    "JobDoc",
    "LabelsSpec",
    "Metric",
    "MnistData",
    "ModelSpec",
    "NpyData",
    "OutputsSpec",
    "ParquetData",
    "PCAStep",
    "PreprocessStep",
    "RawData",
    "StandardScaleStep",
    "ZarrData",
    "check_plain_name",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _number(value: Any) -> Any:
    """A float, or a fraction written as text ("1/255")."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d*)?\s*/\s*\d+(\.\d*)?\s*", value):
        num, den = (float(v) for v in value.split("/"))
        if den == 0:
            raise ValueError("division by zero")
        return float(Fraction(num) / Fraction(den)) if num.is_integer() and den.is_integer() else num / den
    return value


def _finite_nonzero(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        raise ValueError("must be a finite, non-zero number such as 0.00392 or '1/255'")
    return value


Scale = Annotated[float, BeforeValidator(_number), AfterValidator(_finite_nonzero)]
Offset = Annotated[float, BeforeValidator(_number)]

#: A plain name: what a job's name and a job id must be (no '/', no '..', nothing a path could use).
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_plain_name(value: str, what: str = "a job id") -> str:
    """``value`` if it is a plain name (letters, digits, '_', '.', '-'; no '/' or '..'); else
    :class:`~daskcluster.deploy.files.ConfigError`."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or ".." in value:
        from ..deploy.files import ConfigError

        raise ConfigError(f"{what} must be a plain name: 1-128 letters, digits, '_', '.' or '-', starting with a "
                          f"letter or digit, without '..'; got {value!r}.")
    return value


class LabelsSpec(Strict):
    """True labels stored beside the data: a 1-D ``.npy`` file, or a Zarr array of shape
    (n_samples,) or (n_samples, 1), as ``daskcluster datasets`` writes them."""

    path: str
    component: str | None = None


class _Source(Strict):
    scale: Scale | None = Field(None, description="Read the data as x * scale + offset (e.g. '1/255').")
    offset: Offset = 0.0
    max_rows: int | None = Field(None, ge=1, description="Use only the first rows.")
    chunk_bytes: int | None = Field(None, ge=1, description="Target bytes of a row chunk (default 32 MiB).")

    @property
    def has_labels(self) -> bool:
        """Whether the data come with true labels (for the label metrics)."""
        return False


class _FileSource(_Source):
    path: str
    labels: LabelsSpec | None = None

    @property
    def has_labels(self) -> bool:
        return self.labels is not None


class _UrlSource(_FileSource):
    """A source that may live in an object store: a local path or an fsspec URL (``s3://...``),
    with the store's ``storage_options`` (secrets only by environment variable)."""

    storage_options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_for_urls(self) -> _UrlSource:
        if self.storage_options and not is_url(self.path):
            raise ValueError(f"storage_options apply to fsspec URLs (s3://, gs://, file://...), and data.path "
                             f"{self.path!r} is a local path. Drop storage_options, or write the path as a URL")
        return self

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ..deploy.schema import check_env_name
        from .secrets import is_secret_key

        for key, item in value.items():
            if is_secret_key(key):
                raise ValueError(
                    f"'{key}' looks like a credential: secrets never sit in job files. Name the environment "
                    f"variable that holds it instead ('{key}_env: MY_VARIABLE'), or use the storage's own "
                    "environment variables or profile"
                )
            if key.endswith("_env"):
                if not isinstance(item, str):
                    raise ValueError(f"'{key}' must name an environment variable")
                check_env_name(item)
        return value


class ZarrData(_UrlSource):
    """A Zarr array: local path or fsspec URL (``s3://...``), optionally inside a group."""

    kind: Literal["zarr"]
    component: str | None = None


class ParquetData(_UrlSource):
    """A Parquet file or dataset (a folder of files): local path or fsspec URL. The rows are the
    table's rows; the features its numeric ``columns`` (default: every numeric column but
    ``label_column``). Needs the ``parquet`` extra (``pip install 'daskcluster[parquet]'``)."""

    kind: Literal["parquet"]
    columns: list[str] | None = Field(None, min_length=1, description="The feature columns (default: all numeric).")
    label_column: str | None = Field(None, description="A column of true labels, for the label metrics.")

    @property
    def has_labels(self) -> bool:
        return self.labels is not None or self.label_column is not None

    @model_validator(mode="after")
    def _labels_once(self) -> ParquetData:
        if self.label_column is not None and self.labels is not None:
            raise ValueError("give the true labels once: 'label_column' (a column of the table) or 'labels' "
                             "(a file beside it), not both")
        if self.label_column is not None and self.columns is not None and self.label_column in self.columns:
            raise ValueError(f"label_column {self.label_column!r} is also one of the feature columns; "
                             "drop it from 'columns'")
        return self


class NpyData(_FileSource):
    """A 2-D ``.npy`` file, memory-mapped by each task."""

    kind: Literal["npy"]


class RawData(_FileSource):
    """A raw binary file of one dtype, C order, after ``byte_offset`` header bytes."""

    kind: Literal["raw"]
    dtype: str
    shape: tuple[int, int]
    byte_offset: int = Field(0, ge=0)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        import numpy as np

        try:
            dt = np.dtype(value)
        except TypeError:
            raise ValueError("must be a NumPy dtype such as 'uint8' or 'float32'") from None
        if dt.kind not in "biuf":
            raise ValueError("must be a numeric dtype (bool, int, uint or float)")
        return value

    @field_validator("shape", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


class MnistData(_Source):
    """MNIST in the Keras ``.npz`` layout; ``path: null`` looks for it as ``daskcluster.datasets.find_mnist``
    does (``$DASKCLUSTER_MNIST``, then ``shared/data/mnist.npz`` above the working directory)."""

    kind: Literal["mnist"]
    path: str | None = None
    split: Literal["all", "train", "test"] = "all"

    @property
    def has_labels(self) -> bool:
        return True


class BlobsData(_Source):
    """Isotropic Gaussian blobs generated chunk by chunk on the workers (never all in memory)."""

    kind: Literal["blobs"]
    n_samples: int = Field(ge=1)
    n_features: int = Field(ge=1)
    centers: int = Field(8, ge=1)
    cluster_std: float = Field(1.0, gt=0)
    center_box: tuple[float, float] = (-10.0, 10.0)
    chunk_rows: int = Field(100_000, ge=1)
    random_state: int = Field(0, ge=0)
    dtype: Literal["float32", "float64"] = "float64"

    @property
    def has_labels(self) -> bool:
        return True

    @field_validator("center_box", mode="before")
    @classmethod
    def _box(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


DataSpec = ZarrData | ParquetData | NpyData | RawData | MnistData | BlobsData

#: ``data.kind`` -> model.
DATA_KINDS: dict[str, type[_Source]] = {
    "zarr": ZarrData,
    "parquet": ParquetData,
    "npy": NpyData,
    "raw": RawData,
    "mnist": MnistData,
    "blobs": BlobsData,
}


class StandardScaleStep(Strict):
    """``dask_ml.preprocessing.StandardScaler``: one pass to fit, then applied lazily."""

    with_mean: bool = True
    with_std: bool = True


class PCAStep(Strict):
    """``dask_ml.decomposition.PCA`` by a tall-and-skinny QR ('tsqr') or a full SVD."""

    n_components: int = Field(ge=1)
    svd_solver: Literal["auto", "full", "tsqr"] = "tsqr"
    whiten: bool = False
    random_state: int | None = 0


class PreprocessStep(Strict):
    """One step: exactly one of its keys."""

    standard_scale: StandardScaleStep | None = None
    pca: PCAStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None and k == "standard_scale" else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PreprocessStep:
        given = [k for k in ("standard_scale", "pca") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each preprocess step is exactly one of 'standard_scale' or 'pca'"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def name(self) -> str:
        return "standard_scale" if self.standard_scale is not None else "pca"


class ModelSpec(Strict):
    """The estimator, by its name in :data:`daskcluster.jobs.registry.ESTIMATORS`, and its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Metric(NamedTuple):
    """What a metric of ``evaluate.metrics`` needs, and what it is."""

    needs_truth: bool
    text: str
    needs_labels: bool = True
    reads_data: bool = False
    method: str | None = None


#: Metric -> what it needs and what it is. Label metrics come from :mod:`daskcluster.metrics`.
METRICS: dict[str, Metric] = {
    "sizes": Metric(False, "rows per cluster (one pass over the labels)"),
    "score": Metric(False, "estimator.score(X): minus the inertia for k-means, mean log-likelihood for mixtures "
                           "(one pass)", needs_labels=False, reads_data=True, method="score"),
    "bic": Metric(False, "Bayesian information criterion, for estimators with bic() (one pass)",
                  needs_labels=False, reads_data=True, method="bic"),
    "aic": Metric(False, "Akaike information criterion, for estimators with aic() (one pass)",
                  needs_labels=False, reads_data=True, method="aic"),
    "majority_accuracy": Metric(True, "fraction of rows whose cluster's most frequent true label is their own"),
    "adjusted_rand": Metric(True, "adjusted Rand index against the true labels"),
    "normalized_mutual_info": Metric(True, "normalized mutual information (arithmetic mean) against the true labels"),
    "contingency": Metric(True, "rows per (true label, cluster): rows are the true labels, columns the clusters"),
    "silhouette": Metric(False, "mean silhouette, exact on a seeded sample of 10,000 rows (daskcluster.metrics."
                                "silhouette_score; reads the sampled rows)", reads_data=True),
    "calinski_harabasz": Metric(False, "Calinski-Harabasz index (two passes)", reads_data=True),
    "davies_bouldin": Metric(False, "Davies-Bouldin index (two passes)", reads_data=True),
}

MetricName = Literal[
    "sizes", "score", "bic", "aic", "majority_accuracy", "adjusted_rand", "normalized_mutual_info", "contingency",
    "silhouette", "calinski_harabasz", "davies_bouldin",
]


def _default_metrics() -> list[MetricName]:
    return ["sizes"]


class EvaluateSpec(Strict):
    """Metrics after the fit; ``labels``: the true labels to compare with — ``data`` (those that
    come with the data: MNIST, blobs, ``data.labels``), ``none``, or a file."""

    metrics: list[MetricName] = Field(default_factory=_default_metrics)
    labels: Literal["data", "none"] | LabelsSpec = "data"


class OutputsSpec(Strict):
    """What to write into the output folder (``--out`` overrides ``dir``; ``{name}`` is the job's name)."""

    dir: str = "outputs/{name}"
    model: bool = True
    labels: bool = True
    plots: bool | Literal["auto"] = "auto"
    log: bool = True


class JobDoc(Strict):
    """The top level of a job file; ``data`` is validated by its ``kind``'s model afterwards."""

    name: str
    description: str | None = None
    data: dict[str, Any]
    preprocess: list[PreprocessStep] = Field(default_factory=list)
    model: ModelSpec
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 64 or not PLAIN_NAME.fullmatch(value) or ".." in value:
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, "
                             "without '..'")
        return value
