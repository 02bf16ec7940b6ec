"""Shot-scale features of a film still and the gradient-boosted MCU model that reads them.

The CNN trained from scratch on 555 stills overfits; what tells a medium close-up from
its neighbours (MS, CU) is mostly *scale*, which hand-made measurements capture with far
fewer parameters. Everything here is computed from the image alone (the VOC face/person
boxes of the labelled stills are labels, never inputs):

- faces (`faces.face_record`, BlazeFace by default, Haar on request): the tallest face's
  height, width, top/bottom, position, the second face, counts; with Haar faces also Haar's
  second frontal cascade (alt2), eyes and the upper-body cascade (`HAAR_EXTRAS`);
- depth of field: Laplacian energy on a 4x4 grid, centre vs border (MCU/CU backgrounds
  are out of focus, wide shots are sharp throughout);
- Canny edge density (3x3), brightness / saturation, skin-tone fraction (3x3, largest
  blob), the frame's aspect ratio;
- HOG of a 64x64 gray thumbnail (the layout), reduced by PCA inside the model.

`FeatureModel` is a scikit-learn pipeline (PCA on the HOG block, then a class-weighted
`HistGradientBoostingClassifier`), saved with skops (no pickles: loading trusts exactly the
types listed in `TRUSTED_TYPES` and refuses a file that names any other).
"""
from __future__ import annotations

import functools

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.films.faces import DEFAULT_DETECTOR

MODEL_FILE = "features_model.skops"
HOG_PCA = 16


def _hog():
    """A HOG descriptor (cheap to make; one per call, so threads never share one)."""
    import cv2

    return cv2.HOGDescriptor((64, 64), (16, 16), (8, 8), (8, 8), 9)


def _grid(a: np.ndarray, n: int, fn) -> list[float]:
    h, w = a.shape[:2]
    return [float(fn(a[i * h // n:(i + 1) * h // n, j * w // n:(j + 1) * w // n])) for i in range(n) for j in range(n)]


def face_scalars(rec: dict, h: int, w: int) -> dict[str, float]:
    """The measurements of one still's `face_record` (the first block of `scalar_features`)."""
    faces, kinds = rec["faces"], rec["kinds"]
    return {"face_h": rec["face_height"], "frontal_h": rec["frontal_height"], "profile_h": rec["profile_height"],
            "n_frontal": kinds.count("frontal"), "n_profile": kinds.count("profile"), "n_faces": len(faces),
            "face_x": rec.get("face_x", -1), "face_y": rec.get("face_y", -1),
            "face_w": faces[0][2] / w if faces else 0, "face_top": faces[0][1] / h if faces else -1,
            "face_bottom": (faces[0][1] + faces[0][3]) / h if faces else -1,
            "face2_h": sorted(b[3] for b in faces)[-2] / h if len(faces) > 1 else 0,
            "face_area_sum": sum(b[2] * b[3] for b in faces) / (h * w)}


def scalar_features(rgb: np.ndarray, record: dict | None = None, detector: str = DEFAULT_DETECTOR) -> dict[str, float]:
    """The named measurements of one RGB still (any size); `record`: its `face_record` by
    `detector`, if known (a record by another detector is not used: the faces are found again)."""
    import cv2

    from reelworks.films.faces import face_record

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    f = face_scalars(record if record_of(record, detector) else face_record(rgb, detector=detector), h, w)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    f.update(haar_extras(gray, h, w) if detector == "haar" else dict.fromkeys(HAAR_EXTRAS, 0.0))
    # Depth of field: where the image is sharp.
    g = cv2.resize(gray, (256, 192), interpolation=cv2.INTER_AREA).astype(np.float32)
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F))
    grid = np.log1p(np.array(_grid(lap, 4, np.mean)))
    f.update({f"lap{i}": v for i, v in enumerate(grid)})
    border = np.concatenate([lap[:32].ravel(), lap[-32:].ravel(), lap[:, :40].ravel(), lap[:, -40:].ravel()])
    f["lap_centre"], f["lap_border"] = np.log1p(lap[48:144, 64:192].mean()), np.log1p(border.mean())
    f["lap_ratio"] = f["lap_centre"] - f["lap_border"]
    f["lap_max_min"], f["lap_std"] = grid.max() - grid.min(), grid.std()
    edges = cv2.Canny(cv2.resize(gray, (256, 192)), 80, 160) > 0
    f.update({f"edge{i}": v for i, v in enumerate(_grid(edges, 3, np.mean))})
    f["edge_all"] = edges.mean()
    small = cv2.resize(rgb, (128, 96))
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    f["sat"], f["val"], f["val_std"] = hsv[..., 1].mean(), hsv[..., 2].mean(), hsv[..., 2].std()
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    skin = (ycc[..., 1] > 135) & (ycc[..., 1] < 180) & (ycc[..., 2] > 85) & (ycc[..., 2] < 135)
    f.update({f"skin{i}": v for i, v in enumerate(_grid(skin, 3, np.mean))})
    f["skin_all"] = skin.mean()
    n, _, stats, _ = cv2.connectedComponentsWithStats(skin.astype(np.uint8))
    f["skin_blob"] = stats[1:, cv2.CC_STAT_AREA].max() / skin.size if n > 1 else 0
    f["skin_blob_h"] = stats[1:, cv2.CC_STAT_HEIGHT].max() / skin.shape[0] if n > 1 else 0
    f["aspect"] = w / h
    return {k: float(v) for k, v in f.items()}


# The Haar cascades beyond the face detector's own (a second frontal cascade, eyes, upper body).
# With BlazeFace faces they are redundant and cost ~0.4 s a still against BlazeFace's ~0.01 s
# (measured on 100 HOHA stills): left at 0, a constant the boosting never splits on, so both
# detectors keep one vector layout. Grouped 5-fold CV on the 555 HOHA stills without them (and 32 bins):
# recall 0.833 / 0.864 at FPR 0.243 / 0.248, ROC AUC 0.901 / 0.900 (seeds 0 / 1), against 0.841 / 0.871
# at 0.260 / 0.246, AUC 0.899 / 0.908 with them (255 bins).
HAAR_EXTRAS = ("alt2_h", "alt2_n", "ub_h", "ub_n", "ub_w", "eye_n", "eye_h")


def haar_extras(gray: np.ndarray, h: int, w: int) -> dict[str, float]:
    """The `HAAR_EXTRAS` measurements of one gray still of height `h`, width `w`."""
    import cv2

    from reelworks.films.faces import cascade

    eq = cv2.equalizeHist(gray)
    alt2 = cascade("haarcascade_frontalface_alt2.xml").detectMultiScale(eq, 1.1, 3, minSize=(16, 16))
    upper = cascade("haarcascade_upperbody.xml").detectMultiScale(eq, 1.05, 3, minSize=(30, 30))
    eyes = cascade("haarcascade_eye.xml").detectMultiScale(eq, 1.1, 5, minSize=(8, 8))
    return {"alt2_h": max((b[3] for b in alt2), default=0) / h, "alt2_n": len(alt2),
            "ub_h": max((b[3] for b in upper), default=0) / h, "ub_n": len(upper),
            "ub_w": max((b[2] for b in upper), default=0) / w,
            "eye_n": min(len(eyes), 6), "eye_h": max((b[3] for b in eyes), default=0) / h}


def record_of(record: dict | None, detector: str) -> bool:
    """True when `record` is a full `face_record` made by `detector` (records from before there
    was a choice of detector have no `detector` field: they are Haar's)."""
    return record is not None and "kinds" in record and record.get("detector", "haar") == detector


def still_features(rgb: np.ndarray, record: dict | None = None, detector: str = DEFAULT_DETECTOR) -> np.ndarray:
    """One still's feature vector: the scalar measurements, then the 1764 HOG values."""
    import cv2

    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    hog = _hog().compute(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)).ravel()
    scalars = scalar_features(rgb, record, detector).values()
    return np.concatenate([np.array(list(scalars), np.float32), hog.astype(np.float32)])


@functools.lru_cache(maxsize=None)
def scalar_count() -> int:
    return len(scalar_features(np.zeros((96, 128, 3), np.uint8)))


def new_pipeline(seed: int = 0):
    """PCA on the HOG block, the scalars as they are, then class-weighted gradient boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    n = scalar_count()
    columns = ColumnTransformer([("scalars", "passthrough", list(range(n))),
                                 ("hog", PCA(HOG_PCA, random_state=seed), slice(n, None))])
    # Small trees, strong L2, many shallow steps: 555 stills, ~90 features. 32 bins (not 255): with
    # class weights scikit-learn >= 1.8 bins each feature by one weighted percentile per bin edge,
    # which was ~80 % of a fit (6 of 8 s on a busy 2-core machine); ~440 training stills hold
    # ~14 per bin. Grouped CV figures unchanged or better (see HAAR_EXTRAS).
    boost = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10,
                                           l2_regularization=1.0, class_weight="balanced", max_bins=32,
                                           random_state=seed)
    return Pipeline([("columns", columns), ("boost", boost)])


class FeatureModel:
    """MCU probability from `still_features` vectors."""

    def __init__(self, pipeline=None, seed: int = 0):
        self.pipeline = pipeline if pipeline is not None else new_pipeline(seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "FeatureModel":
        self.pipeline.fit(x, y)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return self.pipeline.predict_proba(x)[:, 1] if len(x) else np.zeros(0)

    def save(self, uri: str) -> None:
        from skops.io import dumps

        storage.write_bytes(storage.join(uri, MODEL_FILE), dumps(self.pipeline))

    @classmethod
    def load(cls, uri: str) -> "FeatureModel":
        import zipfile

        from skops.io import get_untrusted_types, loads

        path = storage.join(uri, MODEL_FILE)
        data = storage.read_bytes(path)
        try:
            untrusted = get_untrusted_types(data=data)
            unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
            if unexpected:
                raise ReelworksError(f"refusing {path}: it holds types a shot-features model never does: "
                                     f"{', '.join(repr(t[:80]) for t in unexpected[:5])}")
            pipeline = loads(data, trusted=sorted(untrusted))
        except (zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReelworksError(f"{path} is not a readable skops model ({type(exc).__name__})") from None
        if not hasattr(pipeline, "predict_proba"):
            raise ReelworksError(f"{path} holds a {type(pipeline).__name__}, not a classifier pipeline")
        return cls(pipeline)


# skops builds whatever type a file names (`builtins.eval` called on a string included) once it
# is trusted, so loading trusts exactly the types our pipeline holds beyond skops' own safe
# defaults (NumPy arrays, primitives, scikit-learn estimators and losses). Measured with
# `skops.io.get_untrusted_types` on a trained `new_pipeline()` (skops 0.16, scikit-learn 1.9);
# a new scikit-learn that needs another type fails loading with its name, to be added here.
TRUSTED_TYPES = frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})


def folds_of(y: np.ndarray, folds: int = 5, seed: int = 0, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held) index pairs: stratified k-fold, or, with `groups` (the capture groups: one
    viewing of one film), stratified *grouped* k-fold, so no viewing is on both sides of a fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y).astype(int)
    folds = max(2, min(folds, int(np.bincount(y, minlength=2).min())))
    if groups is None:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y))
    groups = np.asarray(groups)
    folds = min(folds, len(set(groups.tolist())))
    if folds < 2:
        raise ReelworksError("grouped cross-validation needs stills from at least 2 capture groups (viewings)")
    return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))


def out_of_fold(make, x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, groups=None) -> np.ndarray:
    """Scores for every row from a model that never saw it (stratified k-fold; grouped by
    viewing when `groups` are given). A fold whose training part holds one class only scores 0.5."""
    scores = np.full(len(y), 0.5)
    for train, held in folds_of(y, folds, seed, groups):
        if len(set(np.asarray(y)[train].tolist())) == 2:
            scores[held] = make().fit(x[train], y[train])(x[held])
    return scores
