"""The real language server with faults injected, for tests/test_lsp_faults.py.

Run as ``python tests/fault_server.py``; ``DIFFILL_TEST_FAULTS`` (JSON) says
what to break.  Production code has no test hooks: the faults are patched in
here, at the boundary where the real failure would surface.

  load_delay_s    sleep this long in every model load (a slow disk or GPU init)
  fail_forwards   [i, ...] 1-based model-forward calls that raise, counted over
                  the process (a failure in the middle of a request)
  fail_kind       "runtime" (a bug / driver error) or "oom" (torch.OutOfMemoryError)
  fill_gpu_at_forward  n: just before the n-th model forward (1-based, over the
                  process), release the allocator's cached blocks and allocate
                  every free byte of the CUDA GPU (kept), so that forward meets
                  CUDA's own out-of-memory (a real GPU: pytest --device cuda)
  simulated_gpu   device "cuda" loads on the CPU but the engine reports
                  "cuda:0", so the server's out-of-GPU-memory path can run on
                  a machine without a GPU
  forward_delay_s sleep this long before every model forward (a slow model)
  record_requests path of a file that gets one JSON line per engine request
                  ({"prefix", "suffix"}): what the model was given
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time


def install(faults: dict) -> None:
    import torch

    from engine import engine as engine_mod
    from engine import loading
    from engine.backends.masked import MaskedDiffusionBackend

    delay = float(faults.get("load_delay_s", 0))
    if delay:
        real_load_backend = loading.load_backend

        def slow_load_backend(*args, **kwargs):
            time.sleep(delay)
            return real_load_backend(*args, **kwargs)

        loading.load_backend = slow_load_backend

    record = faults.get("record_requests")
    if record:
        def recording(method):
            def wrapper(self, request, *args, **kwargs):
                with open(record, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"prefix": request.prefix, "suffix": request.suffix}) + "\n")
                return method(self, request, *args, **kwargs)
            return wrapper

        # infill: plain requests; stream: requests that send drafts
        engine_mod.Engine.infill = recording(engine_mod.Engine.infill)
        engine_mod.Engine.stream = recording(engine_mod.Engine.stream)

    forward_delay = float(faults.get("forward_delay_s", 0))
    if forward_delay:
        real_forward = MaskedDiffusionBackend._forward_for

        def slow_forward_for(self, *args, **kwargs):
            forward = real_forward(self, *args, **kwargs)
            real_call = type(forward).__call__

            class Slow(type(forward)):
                def __call__(self, input_ids, step):
                    time.sleep(forward_delay)
                    return real_call(self, input_ids, step)

            forward.__class__ = Slow
            return forward

        MaskedDiffusionBackend._forward_for = slow_forward_for

    failing = set(faults.get("fail_forwards", []))
    if failing:
        real_forward_for = MaskedDiffusionBackend._forward_for
        lock = threading.Lock()
        count = [0]
        kind = faults.get("fail_kind", "runtime")

        def faulty_forward_for(self, *args, **kwargs):
            """Every forward of a request (transformers' or the canvas stepper's) counts."""
            forward = real_forward_for(self, *args, **kwargs)
            real_call = type(forward).__call__

            class Faulty(type(forward)):
                def __call__(self, input_ids, step):
                    with lock:
                        count[0] += 1
                        n = count[0]
                    if n in failing:
                        if kind == "oom":
                            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                        raise RuntimeError("injected fault in a forward")
                    return real_call(self, input_ids, step)

            forward.__class__ = Faulty
            return forward

        MaskedDiffusionBackend._forward_for = faulty_forward_for

    fill_at = int(faults.get("fill_gpu_at_forward", 0))
    if fill_at:
        real_forward_for_fill = MaskedDiffusionBackend._forward_for
        fill_lock = threading.Lock()
        forwards = [0]

        def filling_forward_for(self, *args, **kwargs):
            forward = real_forward_for_fill(self, *args, **kwargs)
            real_call = type(forward).__call__

            class Filling(type(forward)):
                def __call__(self, input_ids, step):
                    with fill_lock:
                        forwards[0] += 1
                        n = forwards[0]
                    if n == fill_at:
                        BALLAST.extend(fill_gpu(input_ids.device))
                    return real_call(self, input_ids, step)

            forward.__class__ = Filling
            return forward

        MaskedDiffusionBackend._forward_for = filling_forward_for

    if faults.get("simulated_gpu"):
        real_pick = loading.pick_device
        loading.pick_device = lambda device: "cpu" if device == "cuda" else real_pick(device)
        real_load_engine = engine_mod.load_engine
        import lsp_server.engine_host as host

        class SimulatedGpuEngine(engine_mod.Engine):
            @property
            def device(self) -> str:  # what the server sees; tensors stay on the CPU
                return "cuda:0"

        def load_engine(model=None, device="auto", *args, **kwargs):
            eng = real_load_engine(model, device, *args, **kwargs)
            if device == "cuda":
                eng.__class__ = SimulatedGpuEngine
            return eng

        host.load_engine = load_engine
        real_empty = torch.cuda.empty_cache
        torch.cuda.empty_cache = lambda: None if not torch.cuda.is_available() else real_empty()


#: the tensors that hold the GPU full (kept for the life of the process)
BALLAST: list = []


def fill_gpu(device) -> list:
    """Allocate every free byte of ``device`` in real CUDA allocations: halving chunk
    sizes down to 4 KiB, after the caching allocator gave its cached blocks back (else
    the next forward would find room in them)."""
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    held = []
    size = torch.cuda.mem_get_info(device)[0]
    while size >= 4096:
        try:
            held.append(torch.empty(size, dtype=torch.uint8, device=device))
        except torch.OutOfMemoryError:
            size //= 2
    print(f"fault_server: GPU filled, {torch.cuda.mem_get_info(device)[0]} bytes left free", file=sys.stderr)
    return held


def main() -> int:
    sys.path.insert(0, os.getcwd())
    install(json.loads(os.environ.get("DIFFILL_TEST_FAULTS", "{}")))
    from lsp_server.cli import main as serve

    return serve([])


if __name__ == "__main__":
    sys.exit(main())
