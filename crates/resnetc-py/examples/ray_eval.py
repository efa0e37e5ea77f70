"""Evaluate a CifarResNet on a CIFAR test set with Ray Data, resnetc doing the inference.

    python ray_eval.py MODEL DATA [--address ADDR] [--workers N] [--threads T] [--batch B]
                       [--limit N] [--mean R,G,B] [--std R,G,B] [--predictions OUT.npy] [--json]

MODEL is an ONNX file or a compiled ``.rnc``; DATA a CIFAR-10 or -100 test set in either official
layout (what ``resnetc eval`` reads). The images become a Ray dataset of rows (index, label, pixels);
``map_batches`` sends batches to a pool of ``--workers`` actors, each of which loads the model once
and runs it with ``--threads`` threads. On the Ray cluster at ``--address`` (or ``RAY_ADDRESS``),
whose nodes must have resnetc installed and see MODEL at the same path (a shared file system);
with neither, the script starts a local cluster of its own and stops it at the end.

Prints top-1 accuracy (``--json``: a dict with ``schema_version``, ``images``, ``correct``, ``top1``,
``workers``, ``seconds``); ``--predictions`` writes every image's predicted class, in the data set's
order, as a ``.npy`` file.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import ray

import resnetc


class Classifier:
    """One Ray actor: the model, loaded once, classifying batches of rows."""

    def __init__(self, model_path, threads, mean, std):
        self.model = resnetc.load(model_path)
        self.threads = threads
        self.mean, self.std = mean, std

    def __call__(self, batch):
        x = resnetc.normalize(batch["pixels"], mean=self.mean, std=self.std)
        logits = self.model.run(x, threads=self.threads)
        return {"index": batch["index"], "label": batch["label"], "pred": logits.argmax(axis=1)}


def rgb(text):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not three comma-separated numbers (R,G,B)")
    return values


def evaluate(args, data):
    pixels, labels = data["pixels"], data["labels"]
    n = len(labels)
    rows = ray.data.from_items(
        [{"index": i, "label": int(labels[i]), "pixels": pixels[i]} for i in range(n)],
        override_num_blocks=max(1, min(n // args.batch, 4 * args.workers)),
    )
    start = time.perf_counter()
    results = rows.map_batches(
        Classifier,
        fn_constructor_args=(args.model, args.threads, args.mean, args.std),
        batch_size=args.batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=args.workers),
        num_cpus=args.threads or 1,
    )
    predictions = np.full(n, -1, dtype=np.int64)
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        predictions[batch["index"]] = batch["pred"]
    seconds = time.perf_counter() - start
    if (predictions < 0).any():
        raise RuntimeError(f"{int((predictions < 0).sum())} images came back without a prediction")
    correct = int((predictions == labels).sum())
    return predictions, {
        "schema_version": resnetc.SCHEMA_VERSION,
        "model": str(args.model),
        "data": data["path"],
        "images": n,
        "correct": correct,
        "top1": correct / n,
        "workers": args.workers,
        "seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="an ONNX model or a compiled .rnc")
    parser.add_argument("data", help="a CIFAR test set (binary or python-pickle layout, a file or its folder)")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="the Ray cluster to join (default: RAY_ADDRESS, else a local cluster started here)")
    parser.add_argument("--workers", type=int, default=2, help="actors, each with the model loaded once")
    parser.add_argument("--threads", type=int, default=1, help="resnetc threads per actor")
    parser.add_argument("--batch", type=int, default=100, help="images per batch")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only (N >= 0)")
    parser.add_argument("--mean", type=rgb, default=None, help="per-channel mean after pixels / 255")
    parser.add_argument("--std", type=rgb, default=None, help="per-channel std after pixels / 255")
    parser.add_argument("--predictions", help="write the predicted classes here (.npy)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args()
    if args.workers < 1 or args.threads < 1 or args.batch < 1:
        parser.error("--workers, --threads and --batch must be at least 1")
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be at least 0")

    # The model, the data and the normalization are checked here, before any cluster is joined or
    # started (in an actor, an error would come back as a Ray traceback).
    try:
        resnetc.load(args.model)
        data = resnetc.read_cifar(args.data, limit=args.limit)
        if len(data["labels"]) == 0:
            raise resnetc.InvalidInput(f"{data['path']} holds no images")
        resnetc.normalize(data["pixels"][:1], mean=args.mean, std=args.std)
    except resnetc.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 4 if isinstance(e, resnetc.ResnetcEnvironmentError) else 3

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        # A new local cluster (address="local": never one that `ray start` left running), sized
        # for the actors (a machine with fewer cores still runs them).
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, args.workers * args.threads),
                 log_to_driver=False, include_dashboard=False)
    try:
        predictions, report = evaluate(args, data)
    finally:
        ray.shutdown()
    if args.predictions:
        # Written beside the destination and renamed into place: never a half-written file.
        partial = f"{args.predictions}.partial-{os.getpid()}.npy"
        np.save(partial, predictions)
        os.replace(partial, args.predictions)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['images']} images, top-1 {100 * report['top1']:.2f} % ({report['correct']} correct), "
              f"{report['workers']} workers, {report['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
