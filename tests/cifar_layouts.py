"""Writes the other CIFAR layouts resnetc reads, from the shared CIFAR-10 binary file, for the tests.

Usage: cifar_layouts.py TEST_FIRST1000.BIN OUT_DIR

OUT_DIR/cifar-10-batches-py/{test_batch,batches.meta}: the python version as torchvision downloads
    it: written the way Python 2's cPickle wrote the originals (protocol 2, byte-string keys and
    values, the pixels as a numpy uint8 array whose bytes are one BINSTRING).
OUT_DIR/cifar-10-py{2,4,5}/test_batch: the same data pickled by Python 3 at protocols 2, 4, 5
    (str keys; protocol 5 stores the array through numpy's PickleBuffer path).
OUT_DIR/cifar-100-python/{test,meta} and OUT_DIR/cifar-100-binary/{test.bin,fine_label_names.txt}:
    CIFAR-100 layouts of the same images, fine label = 10 * label + index % 10, coarse label =
    2 * label + index % 2, names `fine_NN` / `coarse_NN`; the fine labels are also written to
    OUT_DIR/cifar100_fine_labels.txt (one a line) for the test to compare with.
"""
import os
import pickle
import struct
import sys

import numpy as np

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes as (SHORT_)BINSTRING, not _codecs.encode calls."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_dump(obj, path):
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def main(src, out):
    raw = np.fromfile(src, dtype=np.uint8).reshape(-1, 3073)
    labels = raw[:, 0].astype(int)
    pixels = np.ascontiguousarray(raw[:, 1:])
    n = len(labels)
    names = [f"img_{i:05d}.png" for i in range(n)]

    d = os.path.join(out, "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    py2_dump({b"batch_label": b"testing batch 1 of 1", b"labels": [int(l) for l in labels],
              b"data": pixels, b"filenames": [s.encode() for s in names]}, os.path.join(d, "test_batch"))
    py2_dump({b"label_names": [s.encode() for s in CIFAR10], b"num_cases_per_batch": 10000, b"num_vis": 3072},
             os.path.join(d, "batches.meta"))

    for proto in (2, 4, 5):
        d = os.path.join(out, f"cifar-10-py{proto}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "test_batch"), "wb") as f:
            pickle.dump({"batch_label": "testing batch 1 of 1", "labels": [int(l) for l in labels],
                         "data": pixels, "filenames": names}, f, protocol=proto)

    fine = [10 * int(l) + i % 10 for i, l in enumerate(labels)]
    coarse = [2 * int(l) + i % 2 for i, l in enumerate(labels)]
    d = os.path.join(out, "cifar-100-python")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "test"), "wb") as f:
        pickle.dump({"filenames": names, "batch_label": "testing batch 1 of 1", "fine_labels": fine,
                     "coarse_labels": coarse, "data": pixels}, f, protocol=4)
    with open(os.path.join(d, "meta"), "wb") as f:
        pickle.dump({"fine_label_names": [f"fine_{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]}, f, protocol=4)

    d = os.path.join(out, "cifar-100-binary")
    os.makedirs(d, exist_ok=True)
    recs = np.concatenate([np.array(coarse, np.uint8)[:, None], np.array(fine, np.uint8)[:, None], pixels], axis=1)
    recs.tofile(os.path.join(d, "test.bin"))
    with open(os.path.join(d, "fine_label_names.txt"), "w") as f:
        f.write("".join(f"fine_{i:02d}\n" for i in range(100)))
    with open(os.path.join(out, "cifar100_fine_labels.txt"), "w") as f:
        f.write("".join(f"{l}\n" for l in fine))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
