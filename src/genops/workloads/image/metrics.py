"""Quality and class-mix metrics of generated images.

* :class:`DomainClassifier`: a small MLP trained on the *real* training split. It labels
  generated images (whose class mix the representation checks read) and its penultimate
  activations are the feature space of :func:`frechet_distance` (an FID-style distance in a
  domain-specific feature space, not Inception's: the numbers are comparable between runs on the
  same data, not with published FIDs).
* :func:`classification_accuracy_score` (CAS, Ravuri & Vinyals 2019): a classifier trained on
  generated images only and tested on real held-out images; with real training images it gives
  the baseline CAS is read against.
* :func:`class_distribution`, :func:`total_variation` and :func:`fairness_discrepancy` (Choi
  et al. 2020, "Fair Generative Modeling via Weak Supervision": the L2 distance between the
  generated attribute distribution and a reference one) compare class mixes.

Images are arrays of shape ``(N, C, H, W)`` (any shape with the sample first works) scaled to
``[-1, 1]``; labels are integer class indices ``0 .. K-1``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

__all__ = [
    "CASResult",
    "DomainClassifier",
    "class_distribution",
    "classification_accuracy_score",
    "fairness_discrepancy",
    "flatten",
    "frechet_distance",
    "total_variation",
]

#: Regularisation of the SVC behind CAS; on digits C in [1, 100] gives the same accuracy, and
#: 10 is less sensitive to the noise of generated training sets than the default 1 is to scale.
CAS_SVC_C = 10.0


def flatten(images: np.ndarray) -> np.ndarray:
    """``(N, ...)`` → ``(N, C*H*W)`` float32 (one row per image)."""
    arr = np.asarray(images)
    if arr.ndim == 0:
        raise ValueError("images: expected an array with the sample axis first")
    return arr.reshape(arr.shape[0], -1).astype(np.float32, copy=False)


def _int_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        as_int = arr.astype(np.int64)
        if not np.array_equal(as_int, arr):
            raise ValueError(f"{name}: expected integer class indices")
        arr = as_int
    return arr.astype(np.int64, copy=False)


class DomainClassifier:
    """An MLP (one hidden ReLU layer) on flattened images, trained on real images.

    ``features`` are the hidden-layer activations ``relu(X @ W1 + b1)``, the space in which
    :func:`frechet_distance` compares real and generated images. Seeded: the same data and seed
    give the same classifier.
    """

    def __init__(self, hidden: int = 128, seed: int = 0) -> None:
        if hidden <= 0:
            raise ValueError(f"hidden must be positive, got {hidden}")
        self.hidden = hidden
        self.seed = seed
        self._model: MLPClassifier | None = None
        self.converged_: bool = False

    def fit(self, images: np.ndarray, labels: np.ndarray) -> DomainClassifier:
        x = flatten(images)
        y = _int_labels(labels)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise ValueError("the domain classifier needs images of at least two classes")
        model = MLPClassifier(
            hidden_layer_sizes=(self.hidden,),
            activation="relu",
            alpha=1e-4,
            max_iter=500,
            random_state=self.seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, y)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        self._model = model
        return self

    @property
    def model(self) -> MLPClassifier:
        if self._model is None:
            raise RuntimeError("DomainClassifier is not fitted; call fit() first")
        return self._model

    @property
    def classes_(self) -> np.ndarray:
        """The class indices seen in training, in column order of the underlying model."""
        return np.asarray(self.model.classes_, dtype=np.int64)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted class index per image (int64)."""
        return np.asarray(self.model.predict(flatten(images)), dtype=np.int64)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, max(classes_) + 1)``: column ``k`` is class index ``k``
        (zero for a class index absent from the training labels)."""
        proba = np.asarray(self.model.predict_proba(flatten(images)), dtype=np.float64)
        classes = self.classes_
        out = np.zeros((proba.shape[0], int(classes.max()) + 1), dtype=np.float64)
        out[:, classes] = proba
        return out

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate (hidden-layer) activations ``(N, hidden)``, float64."""
        model = self.model
        x = flatten(images).astype(np.float64)
        hidden = x @ model.coefs_[0] + model.intercepts_[0]
        return np.maximum(hidden, 0.0)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Share of images whose predicted class equals ``labels`` (NaN for no images)."""
        y = _int_labels(labels)
        if len(y) == 0:
            return math.nan
        return float(np.mean(self.predict(images) == y))


def _as_2d(features: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected (N, D) features, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name}: at least 2 rows are needed, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return arr


def _sqrtm_trace(sigma_a: np.ndarray, sigma_b: np.ndarray, eps: float) -> float:
    """``Tr sqrtm(Sa Sb)``; when the product is singular (numerically: a non-finite root, a
    large residual or an imaginary part) both covariances are regularised with ``eps * I``,
    then ten and a hundred times more."""
    dim = sigma_a.shape[0]
    product = sigma_a @ sigma_b
    offsets = [0.0, eps, 10.0 * eps, 100.0 * eps]
    last: np.ndarray | None = None
    for offset in offsets:
        if offset:
            eye = np.eye(dim) * offset
            product = (sigma_a + eye) @ (sigma_b + eye)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = np.asarray(linalg.sqrtm(product))
        if not np.isfinite(root).all():
            continue
        last = root
        scale = max(float(np.linalg.norm(product)), 1e-300)
        residual = float(np.linalg.norm(root @ root - product)) / scale
        imag = float(np.abs(np.imag(np.diagonal(root))).max()) if np.iscomplexobj(root) else 0.0
        real_diag = float(np.abs(np.real(np.diagonal(root))).max()) or 1.0
        if residual < 1e-5 and imag <= 1e-3 * real_diag:
            return float(np.real(np.trace(root)))
    if last is None:
        raise ValueError("frechet_distance: the matrix square root is not finite")
    return float(np.real(np.trace(last)))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets:

    ``||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 sqrtm(Sa Sb))``

    (the FID formula; sample covariances, ``ddof=1``). Each set needs at least 2 rows; 1-D input
    is one feature. Singular covariances (dead ReLU units, fewer rows than features) are
    regularised with ``eps * I``; tiny negative results from round-off are clamped to 0.
    """
    a = _as_2d(features_a, "features_a")
    b = _as_2d(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(b, rowvar=False))
    diff = mu_a - mu_b
    tr_covmean = _sqrtm_trace(sigma_a, sigma_b, eps)
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * tr_covmean)
    return max(value, 0.0)


@dataclass
class CASResult:
    """Accuracy of a classifier trained on ``n_train`` images, on a test set; ``per_class`` is
    the recall of each class present in the test set."""

    accuracy: float
    per_class: dict[int, float] = field(default_factory=dict)
    n_train: int = 0


def classification_accuracy_score(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    seed: int = 0,
) -> CASResult:
    """Train an RBF SVC (``gamma="scale"``, ``C=CAS_SVC_C``) on ``train_*`` only, test on
    ``test_*``.

    CAS: train = generated images with the classes they were conditioned on, test = the real
    holdout. The real-trained baseline: train = the real training split. A training set with a
    single class (a collapsed generator) cannot fit an SVC: that class is predicted for every
    test image, so the score is low rather than an error.
    """
    x_train, y_train = flatten(train_images), _int_labels(train_labels, "train_labels")
    x_test, y_test = flatten(test_images), _int_labels(test_labels, "test_labels")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("images and labels differ in length")
    if len(y_train) == 0 or len(y_test) == 0:
        raise ValueError("classification_accuracy_score needs training and test images")
    for name, y in (("train_labels", y_train), ("test_labels", y_test)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name}: class indices must lie in [0, {num_classes})")
    present = np.unique(y_train)
    if len(present) == 1:
        pred = np.full(len(y_test), int(present[0]), dtype=np.int64)
    else:
        model = SVC(C=CAS_SVC_C, kernel="rbf", gamma="scale", random_state=seed)
        model.fit(x_train, y_train)
        pred = np.asarray(model.predict(x_test), dtype=np.int64)
    correct = pred == y_test
    per_class = {
        k: float(correct[y_test == k].mean()) for k in range(num_classes) if (y_test == k).any()
    }
    return CASResult(accuracy=float(correct.mean()), per_class=per_class, n_train=len(y_train))


def class_distribution(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of each class index ``0 .. num_classes-1`` (sums to 1; all zeros for no labels)."""
    y = _int_labels(labels)
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels: class indices must lie in [0, {num_classes})")
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def _pair(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(p, dtype=np.float64).ravel()
    b = np.asarray(q, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"distributions differ in length: {a.shape[0]} vs {b.shape[0]}")
    return a, b


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``0.5 * sum |p - q|`` (0 … 1 for distributions)."""
    a, b = _pair(p, q)
    return float(0.5 * np.abs(a - b).sum())


def fairness_discrepancy(p: np.ndarray, q: np.ndarray) -> float:
    """Fairness discrepancy ``||p - q||_2`` (Choi et al. 2020): L2 distance between the
    generated class distribution and a reference one (the real, or the uniform, mix)."""
    a, b = _pair(p, q)
    return float(np.linalg.norm(a - b))
