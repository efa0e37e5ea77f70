"""Serve a CifarResNet over KServe's v2 open inference protocol, resnetc doing the inference.

    python kserve_server.py MODEL [--model_name NAME] [--http-port P] [--threads N] [KServe's flags]

MODEL is an ONNX file or a compiled ``.rnc``. The server is KServe's own (``kserve.ModelServer``:
REST on ``--http-port``, gRPC on ``--grpc_port`` unless ``--enable_grpc false``), so the same
script is the entry point of a KServe predictor container on Kubernetes, and scales there by
replicas (one server process each: KServe's ``--workers`` is refused, a loaded model does not
move between processes). A client sends the model's input as an FP32 tensor (``tritonclient.http``
or any v2 client; a JSON body must say ``Content-Type: application/json``):

    POST /v2/models/NAME/infer  {"inputs": [{"name": "input", "shape": [8, 3, 32, 32],
                                             "datatype": "FP32", "data": [...]}]}

and gets the logits back, in JSON or binary as it asked. A tensor resnetc refuses (another shape
or layout, another dtype, NaN), another input name or an unknown output is answered with HTTP 400
and resnetc's message. (A binary body whose byte count does not fit its declared shape is refused
by KServe itself, before this model sees it.) Each request runs in a thread of its own with the GIL
released, on ``--threads`` threads (default 1: concurrent requests use the other cores).
"""

import argparse
import asyncio
import uuid

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

import resnetc

# A v2 tensor's datatype for a numpy dtype name (the ones a model's ports can have).
V2_TYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64", "bool": "BOOL"}


def _v2_port(port):
    """A model port as v2 model metadata: a symbolic dimension (the batch) is -1."""
    shape = [d if isinstance(d, int) else -1 for d in port["shape"]]
    return {"name": port["name"], "datatype": V2_TYPES[port["dtype"]], "shape": shape}


class ResnetcModel(kserve.Model):
    """A KServe predictor whose ``predict`` runs a model loaded once by resnetc."""

    def __init__(self, name, path, threads=None):
        super().__init__(name)
        self.path = path
        self.threads = threads
        self.model = None

    def load(self):
        self.model = resnetc.load(self.path)
        self.ready = True
        return self.ready

    def get_input_types(self):
        return [_v2_port(p) for p in self.model.inputs]

    def get_output_types(self):
        return [_v2_port(p) for p in self.model.outputs]

    async def predict(self, payload: InferRequest, headers=None, response_headers=None):
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this predictor speaks the v2 protocol: POST /v2/models/NAME/infer")
        (port,) = self.model.inputs
        tensors = payload.inputs
        if [t.name for t in tensors] != [port["name"]]:
            names = ", ".join(f"'{t.name}'" for t in tensors) or "none"
            raise InvalidInput(f"the model takes one input, '{port['name']}'; the request has {names}")
        try:
            x = tensors[0].as_numpy()
        except (ValueError, TypeError) as e:  # a datatype or byte count that does not fit the shape
            raise InvalidInput(f"input '{port['name']}': {e}") from e
        try:
            # In a worker thread: the GIL is released while resnetc runs, so the event loop goes
            # on accepting requests and concurrent ones run at once (each on a session of its own).
            y = await asyncio.to_thread(self.model.run, x, self.threads)
        except resnetc.InvalidInput as e:
            raise InvalidInput(str(e)) from e
        (out_port,) = self.model.outputs
        output = InferOutput(name=out_port["name"], shape=list(y.shape), datatype=V2_TYPES[str(y.dtype)])
        output.set_data_from_numpy(y, binary_data=payload.use_binary_outputs)
        # v2 responses carry an id: the request's, or a new one when the client sent none. KServe
        # encodes each output as the request asked (binary or JSON) and refuses unknown names.
        return InferResponse(
            model_name=self.name,
            infer_outputs=[output],
            response_id=payload.id or str(uuid.uuid4()),
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def main():
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], description=__doc__.split("\n")[0])
    parser.add_argument("model", help="an ONNX model or a compiled .rnc")
    parser.add_argument("--http-port", dest="http_port", type=int, help="the same as --http_port")
    parser.add_argument("--threads", type=int, default=1, help="resnetc threads per request")
    args = parser.parse_args()
    if args.workers != 1:
        parser.error("--workers must be 1: a loaded model stays in its process (scale with replicas instead)")
    if args.threads < 1:
        parser.error("--threads must be at least 1")

    # --model_name is KServe's flag (its default, "model", unless given).
    model = ResnetcModel(args.model_name, args.model, args.threads)
    try:
        model.load()
    except resnetc.Error as e:
        parser.exit(3 if not isinstance(e, resnetc.ResnetcEnvironmentError) else 4, f"error: {e}\n")
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=args.enable_grpc).start([model])


if __name__ == "__main__":
    main()
