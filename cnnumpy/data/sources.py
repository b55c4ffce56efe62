"""Where each data set lives: official files, checksums, mirrors, and the search order.

Every loader looks for its files in this order and uses the first place that has them:

1. ``path=`` given by the caller: only that place is searched (the folder itself or its
   data set subfolder, e.g. ``path/mnist``; for CIFAR-10 also the archive or batch
   folder itself); nothing is downloaded.
2. ``$CNNUMPY_DATA``: a data root laid out as below.
3. The user cache ``$XDG_CACHE_HOME/cnnumpy`` (default ``~/.cache/cnnumpy``), same
   layout.
4. System folders: ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist``) for Fashion-MNIST.
5. A download from the official locations into the cache, when ``download=True``.

A data root (``$CNNUMPY_DATA`` or the cache) looks like::

    mnist/          train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
                    (each also accepted raw, without .gz)
    fashion-mnist/  the same four names
    cifar-10-python.tar.gz   or the extracted   cifar-10-batches-py/
    tiny-shakespeare/input.txt   (char-rnn's name, tinyshakespeare/, also accepted)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cnnumpy.data.download import cache_dir

ENV_VAR = "CNNUMPY_DATA"
# Seconds allowed to connect and for each read of a download (the whole transfer gets
# cnnumpy.data.download's default deadline: its size at 25 kB/s, plus this).
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class IdxSpec:
    """An MNIST-like data set of four IDX files.

    ``raw_md5`` is the md5 of each decompressed official file (what is verified: mirrors
    re-gzip the same content), ``gz_md5`` the md5 of the official .gz, also accepted.
    """

    name: str
    title: str
    subdirs: tuple[str, ...]
    files: dict[str, tuple[str, str]]
    raw_md5: dict[str, str]
    gz_md5: dict[str, str]
    mirrors: tuple[str, ...]
    sizes: dict[str, int]
    class_names: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CifarSpec:
    """CIFAR-10's python-version archive: its md5 and size in bytes, each batch's md5
    and its URLs."""

    name: str
    title: str
    subdirs: tuple[str, ...]
    archive_md5: str
    batch_md5: dict[str, str]
    urls: tuple[str, ...]
    sizes: dict[str, int]
    class_names: tuple[str, ...]
    archive_bytes: int = 170_498_071


@dataclass(frozen=True)
class TextSpec:
    """A corpus of one UTF-8 file: its name, exact size in bytes, sha256 and URLs."""

    name: str
    title: str
    subdirs: tuple[str, ...]
    filename: str
    size: int
    sha256: str
    urls: tuple[str, ...]


def idx_download_bytes(spec: IdxSpec, split: str) -> tuple[int, int]:
    """The most bytes a .gz of the split's images and labels files can have.

    The decompressed sizes are exact: a 16-byte header and ``N * 28 * 28`` pixels, an
    8-byte header and ``N`` labels. Mirrors re-gzip them, so the .gz sizes vary, but
    no gzip is much larger than its content: deflate's stored blocks add 5 bytes per
    65,535, and the header, file name and trailer stay far below 64 KiB.
    """
    n = spec.sizes[split]
    raw = (16 + n * 28 * 28, 8 + n)
    return tuple(size + size // 8192 + 65536 for size in raw)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MNIST = IdxSpec(
    name="mnist",
    title="MNIST",
    subdirs=("mnist", "MNIST/raw"),
    files=_IDX_FILES,
    raw_md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    gz_md5={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    sizes={"train": 60000, "test": 10000},
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = IdxSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    subdirs=("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
    files=_IDX_FILES,
    raw_md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    gz_md5={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
            "data/fashion/"
        ),
    ),
    sizes={"train": 60000, "test": 10000},
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    subdirs=("cifar10",),
    archive_md5="c58f30108f718f92721af3b95e74349a",
    batch_md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    sizes={"train": 50000, "test": 10000},
    class_names=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
)

# Karpathy's char-rnn corpus. The size and sha256 are the ones TensorFlow Datasets
# pins for this URL (tensorflow_datasets/url_checksums/tiny_shakespeare.txt).
TINY_SHAKESPEARE = TextSpec(
    name="tiny-shakespeare",
    title="tiny Shakespeare",
    subdirs=("tiny-shakespeare", "tinyshakespeare"),
    filename="input.txt",
    size=1_115_394,
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    urls=(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
        "tinyshakespeare/input.txt",
    ),
)

SPECS: dict[str, IdxSpec | CifarSpec] = {
    MNIST.name: MNIST,
    FASHION_MNIST.name: FASHION_MNIST,
    CIFAR10.name: CIFAR10,
}


def candidate_dirs(
    spec: IdxSpec | CifarSpec | TextSpec, path: str | os.PathLike | None
) -> list[tuple[str, Path]]:
    """The places to search, in order, each with a label for error messages."""
    if path is not None:
        root = Path(path).expanduser()
        return [("path=", root)] + [("path=", root / sub) for sub in spec.subdirs]
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        places += [(f"${ENV_VAR}", Path(env).expanduser() / s) for s in spec.subdirs]
        if isinstance(spec, CifarSpec):
            places.insert(0, (f"${ENV_VAR}", Path(env).expanduser()))
    cache = cache_dir()
    places += [("cache", cache / s) for s in spec.subdirs]
    if isinstance(spec, CifarSpec):
        places.insert(len(places) - len(spec.subdirs), ("cache", cache))
    places += [("system", Path(d)) for d in getattr(spec, "system_dirs", ())]
    return places


def not_found_message(
    caller: str, what: str, tried: list[str], download: bool, explicit: bool
) -> str:
    """The error text listing every place tried and how to fix it."""
    if not explicit and not os.environ.get(ENV_VAR):
        tried = [f"${ENV_VAR}: not set", *tried]
    lines = [f"{caller}: could not find {what}. Tried:"]
    lines += ["  - " + t.replace("\n", "\n    ") for t in tried]
    if explicit:
        fix = (
            "pass path= pointing at the files or their folder, or leave path=None to "
            f"search ${ENV_VAR} and the cache and to download"
        )
    else:
        fix = (
            f"set {ENV_VAR} to a data root holding them (layout in "
            "cnnumpy.data.sources), pass path= pointing at them, or "
            + (
                "check the network: the downloads above failed"
                if download
                else f"allow download=True to fetch them into {cache_dir()}"
            )
        )
    lines.append(f"Fix: {fix}.")
    return "\n".join(lines)
