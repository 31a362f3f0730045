"""Blockwise runs on a dask.distributed cluster: block grids, completion records, the model on
every worker, and the loop that hands blocks out and reports them as they finish.

The capabilities (:mod:`napari_restore.destripe.distributed`,
:mod:`napari_restore.denoise.distributed`) say what one block is and how it is computed; this
module does what every blockwise run shares:

- :func:`block_grid` cuts an output into blocks whose edges follow the output's chunk grid, so
  every chunk has one writer and blocks never need a lock;
- :class:`BlockRecord` keeps, inside the output store, which blocks are finished (one empty
  file per block, written by the worker *after* the block's data), the run's fingerprint and
  whether the whole output is complete; a rerun with ``resume=True`` skips finished blocks;
- :class:`ModelBlob` and :class:`ModelPlugin` send the model to each worker once (a worker
  plugin: a worker that is restarted after a crash gets it again), never with each block;
- :func:`run_blocks` submits the pending blocks, yields a
  :class:`~napari_restore.core.progress.Progress` per finished block and cancels what is left
  when it is closed (Ctrl-C, a Cancel button): the store then stays incomplete and resumable.

A block whose worker dies is recomputed by dask on another worker; blocks write whole chunks
and are deterministic, so the output is the same.

``distributed`` is imported only inside the functions that need it, so importing this module
(and the engine) does not need it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_restore.core.progress import Progress, ProgressGenerator
from napari_restore.errors import RestoreInputError

RECORD_DIR = ".napari-restore"  # a hidden folder zarr readers ignore
# Share of a worker's memory limit that the blocks it holds at once may use.
MEMORY_SHARE = 0.25


def block_grid(shape: Sequence[int], block_shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """Blocks of ``block_shape`` (smaller at the far edges) covering ``shape``, in C order.

    Parameters
    ----------
    shape, block_shape : sequence of int
        Array shape and block size per axis.

    Returns
    -------
    list of tuple of slice
    """
    if len(shape) != len(block_shape) or min(block_shape, default=1) < 1:
        raise RestoreInputError(f"block shape {tuple(block_shape)} does not fit shape {shape}.")
    counts = [math.ceil(s / b) for s, b in zip(shape, block_shape, strict=True)]
    return [
        tuple(
            slice(i * b, min(s, (i + 1) * b))
            for i, b, s in zip(index, block_shape, shape, strict=True)
        )
        for index in np.ndindex(*counts)
    ]


def block_shape_for(
    shape: Sequence[int],
    chunks: Sequence[int],
    bytes_per_voxel: float,
    memory_bytes: float,
    *,
    block_axes: int = 2,
) -> tuple[int, ...]:
    """Largest block (a whole number of chunks) whose working memory fits ``memory_bytes``.

    Blocks grow first along the leading axes (whole planes, then more planes), splitting the
    last ``block_axes`` axes only when one plane does not fit.

    Parameters
    ----------
    shape, chunks : sequence of int
        Output shape and its chunk shape.
    bytes_per_voxel : float
        Working memory of the method per output voxel (input, float copies, blending sums).
    memory_bytes : float
        What one block may use.
    block_axes : int
        Trailing axes the method sees at once (2: planes; 3: ``(t, y, x)`` stacks).
    """
    budget = max(1.0, memory_bytes / bytes_per_voxel)
    block = list(chunks)
    nd = len(shape)
    # Trailing axes: grow to the whole extent while the block fits.
    for axis in range(nd - 1, nd - 1 - block_axes, -1):
        others = math.prod(block[:axis] + block[axis + 1 :])
        fit = int(budget // max(1, others)) // chunks[axis] * chunks[axis]
        block[axis] = int(min(shape[axis], max(chunks[axis], fit)))
    # Leading axes: as many planes as fit.
    for axis in range(nd - 1 - block_axes, -1, -1):
        others = math.prod(block[:axis] + block[axis + 1 :])
        fit = int(budget // max(1, others)) // chunks[axis] * chunks[axis]
        block[axis] = int(min(shape[axis], max(chunks[axis], fit)))
    return tuple(block)


class BlockRecord:
    """Which blocks of a run are finished, kept in a hidden folder inside the output store.

    ``run.json`` holds the run's fingerprint (what was computed, with which model and
    settings), the block shape and whether the output is complete; ``done/<i>`` is an empty
    file per finished block, created by the worker once the block's data is written. Zarr
    readers ignore the folder.

    Parameters
    ----------
    store : path-like
        The output store (a directory).
    """

    def __init__(self, store: str | os.PathLike[str], stage: str = "done") -> None:
        self.store = Path(store)
        self.dir = self.store / RECORD_DIR
        self.run_file = self.dir / "run.json"
        self.done_dir = self.dir / stage

    def read(self) -> dict[str, Any] | None:
        """The run description, or None when the store has no record."""
        try:
            return json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def start(self, run: dict[str, Any]) -> None:
        """Write a new run description (not complete) and forget finished blocks."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self._write({**run, "complete": False})

    def _write(self, run: dict[str, Any]) -> None:
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(run, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.run_file)

    def finished(self) -> set[int]:
        """Indices of the finished blocks."""
        if not self.done_dir.is_dir():
            return set()
        return {int(p.name) for p in self.done_dir.iterdir() if p.name.isdigit()}

    def mark(self, index: int, payload: dict[str, Any] | None = None) -> None:
        """Record block ``index`` as finished (called by the worker after writing it), with
        what the block measured (e.g. sums a later stage needs)."""
        self.done_dir.mkdir(parents=True, exist_ok=True)
        path = self.done_dir / str(int(index))
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload or {}), encoding="utf-8")
        os.replace(tmp, path)

    def payloads(self) -> dict[int, dict[str, Any]]:
        """What every finished block recorded."""
        return {
            i: json.loads((self.done_dir / str(i)).read_text(encoding="utf-8") or "{}")
            for i in self.finished()
        }

    def complete(self) -> None:
        """Mark the whole output complete (only after every block and the metadata)."""
        run = self.read() or {}
        self._write({**run, "complete": True})

    @property
    def array_path(self) -> str | None:
        """The full-resolution array of the output (to view it while it fills in)."""
        run = self.read()
        return None if run is None else run.get("array")

    @property
    def is_complete(self) -> bool:
        run = self.read()
        return bool(run and run.get("complete"))


def fingerprint(description: dict[str, Any]) -> str:
    """Stable hash of a run's description (JSON with sorted keys)."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resume_or_start(
    record: BlockRecord, run: dict[str, Any], *, resume: bool, n_blocks: int
) -> set[int]:
    """Start a run's record, or take up an unfinished one with the same fingerprint.

    Returns
    -------
    set of int
        The blocks already finished (empty for a new run).

    Raises
    ------
    RestoreInputError
        When ``resume`` is asked of a record of another run.
    """
    old = record.read()
    if resume and old is not None:
        if old.get("fingerprint") != run["fingerprint"]:
            raise RestoreInputError(
                f"{record.store} was started with other settings, input or model "
                f"({old.get('description')}); resume it with the same ones, or choose "
                "--overwrite to start again."
            )
        done = {i for i in record.finished() if i < n_blocks}
        return done
    record.start(run)
    return set()


def prepare_output(out: Path, inp: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Before a blockwise run: refuse clashes; return the record of an unfinished run to
    resume (else None, after removing an output that ``overwrite`` allows to replace)."""
    from napari_restore.io import check_output_paths

    name = out.name.lower()
    if not name.endswith(".zarr"):
        raise RestoreInputError(
            f"{out}: a run on a cluster writes OME-Zarr; name the output DIR.ome.zarr."
        )
    record = BlockRecord(out)
    old = record.read() if out.exists() else None
    if resume and old is not None:
        if old.get("complete"):
            raise RestoreInputError(f"{out} is already complete; nothing to resume.")
        check_output_paths([out], [inp], overwrite=True)
        return old
    check_output_paths([out], [inp], overwrite=overwrite)
    if out.exists():  # overwrite: checked above that it is not the input
        shutil.rmtree(out)
    return None


def plan_blocks(
    shape: tuple[int, ...],
    chunk_yx: int,
    block_shape: Sequence[int] | None,
    old: dict[str, Any] | None,
    client: Any,
    *,
    bytes_per_voxel: float,
    max_block_bytes: float,
    lead_chunk: int = 1,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output chunks and block shape of a run: a resumed run's own; the block size asked for
    (chunks shrink to it where it is smaller); else from the workers' memory limit.

    Returns
    -------
    (chunks, block_shape)
    """
    chunks = (min(shape[0], lead_chunk),) * (len(shape) - 2) + tuple(
        min(s, chunk_yx) for s in shape[-2:]
    )
    if old is not None:
        return tuple(old["chunks"]), tuple(old["block_shape"])
    if block_shape is not None:
        if len(block_shape) != len(shape) or min(block_shape) < 1:
            raise RestoreInputError(f"block shape {tuple(block_shape)} does not fit {shape}.")
        # Blocks smaller than a chunk get smaller chunks: each chunk keeps one writer.
        chunks = tuple(min(c, int(b)) for c, b in zip(chunks, block_shape, strict=True))
        blocks = tuple(
            max(c, int(b) // c * c) if b < s else s
            for b, c, s in zip(block_shape, chunks, shape, strict=True)
        )
        return chunks, blocks
    limit = worker_memory_limit(client)
    budget = max_block_bytes if limit is None else min(max_block_bytes, MEMORY_SHARE * limit)
    return chunks, block_shape_for(shape, chunks, bytes_per_voxel, budget)


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelBlob:
    """A network as plain bytes (safetensors weights + JSON metadata): what workers receive.

    Attributes
    ----------
    weights : bytes
        safetensors bytes of the state dict.
    metadata : str
        JSON metadata with at least ``architecture`` (to rebuild the network).
    digest : str
        Hash of both, naming the model on the workers.
    """

    weights: bytes
    metadata: str
    digest: str

    @classmethod
    def from_module(cls, net: Any, metadata: dict[str, Any]) -> ModelBlob:
        """Pack a network and its metadata."""
        from safetensors.torch import save

        state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
        weights = save(state)
        meta = dict(metadata)
        if "architecture" not in meta and hasattr(net, "architecture"):
            meta["architecture"] = net.architecture()
        text = json.dumps(meta, sort_keys=True, default=str)
        digest = hashlib.sha256(weights + text.encode()).hexdigest()[:16]
        return cls(weights, text, digest)

    def build(self, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
        """Rebuild the network (eval mode, on ``device``) and its metadata; never unpickles."""
        from safetensors.torch import load

        from napari_restore.models import build_model

        meta = json.loads(self.metadata)
        net = build_model(meta["architecture"])
        net.load_state_dict(load(self.weights), strict=True)
        return net.to(device).eval(), meta


_BLOBS: dict[str, ModelBlob] = {}  # on each worker: the models its plugins brought
_NETS: dict[tuple[str, str], Any] = {}  # built networks per (digest, device), kept for reuse


class ModelPlugin:
    """Worker plugin that carries one model to every worker, once.

    The scheduler keeps registered plugins and gives them to workers that join later (or
    restart after a crash), so a killed worker's replacement gets the model too. Its setup
    also bounds the worker's compression threads (:func:`limit_worker_threads`).
    """

    def __init__(self, blob: ModelBlob) -> None:
        self.blob = blob
        self.name = f"napari-restore-model-{blob.digest}"

    def setup(self, worker: Any = None) -> None:
        _BLOBS[self.blob.digest] = self.blob
        nthreads = getattr(getattr(worker, "state", None), "nthreads", None)
        limit_worker_threads(int(nthreads) if nthreads else None)

    def teardown(self, worker: Any = None) -> None:
        _BLOBS.pop(self.blob.digest, None)


def share_model(client: Any, blob: ModelBlob) -> str:
    """Send a model to every worker of ``client`` once; returns the name tasks use for it."""
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin_cls = type("NapariRestoreModelPlugin", (ModelPlugin, WorkerPlugin), {})
    plugin = plugin_cls(blob)
    client.register_plugin(plugin, name=plugin.name)
    return blob.digest


def worker_model(digest: str, device: Any) -> tuple[Any, dict[str, Any]]:
    """On a worker: the network a plugin brought, built once per device and kept."""
    import torch

    from napari_restore.core.device import resolve_device

    dev = resolve_device(_worker_gpu(device))
    key = (digest, str(dev))
    if key not in _NETS:
        if digest not in _BLOBS:
            raise RuntimeError(f"model {digest} was not sent to this worker")
        _NETS.clear()  # one model at a time per worker keeps memory bounded
        torch.set_num_threads(worker_threads())
        _NETS[key] = _BLOBS[digest].build(dev)
    return _NETS[key]


def _worker_gpu(device: Any) -> Any:
    """``auto``/``cuda`` on a node with several visible GPUs and plain dask workers (no
    dask-cuda, which gives each worker its own ``CUDA_VISIBLE_DEVICES``): worker ``k`` of a
    local cluster takes GPU ``k mod n``."""
    import torch

    if str(device) not in ("auto", "cuda") or not torch.cuda.is_available():
        return device
    n = torch.cuda.device_count()
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return device
    return f"cuda:{name % n}" if n > 1 and isinstance(name, int) else device


def limit_worker_threads(threads: int | None = None) -> int:
    """On a worker: keep (de)compression within the worker's threads.

    Blosc and zarr's codec pool default to every core of the node, so each worker process
    would compete with the others for the cores dask gave them. Called by the model plugin's
    setup, which every worker runs (replacements of killed workers too) before its first
    block. Returns the thread count.
    """
    threads = threads or worker_threads()
    try:
        import numcodecs.blosc

        numcodecs.blosc.set_nthreads(threads)
    except ImportError:  # pragma: no cover - numcodecs comes with zarr
        pass
    import zarr

    zarr.config.set({"threading.max_workers": threads})
    return threads


@functools.lru_cache(maxsize=4)
def worker_input(path: str) -> Any:
    """On a worker: the input volume, opened lazily once per path
    (:func:`napari_restore.io.open_image`)."""
    from napari_restore.io import open_image

    return open_image(path)


@functools.lru_cache(maxsize=8)
def worker_array(path: str) -> Any:
    """On a worker: a zarr array of the output store, opened once per path for writing."""
    import zarr

    return zarr.open_array(path, mode="r+")


def worker_threads() -> int:
    """Threads of the current dask worker (1 outside a worker): what torch may use."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError):
        return 1


# ----------------------------------------------------------------------------- clusters
def worker_memory_limit(client: Any) -> float | None:
    """Smallest memory limit (bytes) of the client's workers; None when unlimited."""
    workers = client.scheduler_info().get("workers", {})
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    limits = [v for v in limits if v > 0]
    return float(min(limits)) if limits else None


@contextlib.contextmanager
def cluster_client(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | float | None = "auto",
    dashboard: bool = True,
) -> Iterator[Any]:
    """A dask.distributed client: on a running cluster, or on a local one started here.

    Parameters
    ----------
    workers : int, optional
        Local worker processes to start. ``0`` or None: one per GPU when there are GPUs
        (``dask_cuda.LocalCUDACluster`` if dask-cuda is installed), else one per CPU core.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or a scheduler file (``.json``);
        ``workers`` is then ignored.
    threads_per_worker : int
        Threads per local worker (torch uses as many).
    memory_limit : str, float or None
        Per local worker (dask's ``"auto"``: the machine's memory shared out).
    dashboard : bool
        Start the dashboard of a local cluster.

    Yields
    ------
    distributed.Client
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - a dependency, but say what to install
        raise RestoreInputError(
            "Running on a cluster needs dask.distributed: pip install distributed"
        ) from err
    if scheduler:
        kwargs = {"scheduler_file": scheduler} if scheduler.endswith(".json") else {}
        client = Client(**kwargs) if kwargs else Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = _local_cluster(workers, threads_per_worker, memory_limit, dashboard, LocalCluster)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _local_cluster(
    workers: int | None,
    threads: int,
    memory_limit: Any,
    dashboard: bool,
    local_cluster: Callable[..., Any],
) -> Any:
    import torch

    address = ":0" if dashboard else None  # None: no dashboard
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and not workers:
        try:
            from dask_cuda import LocalCUDACluster

            return LocalCUDACluster(
                threads_per_worker=threads, memory_limit=memory_limit, dashboard_address=address
            )
        except ImportError:
            workers = gpus  # one process per GPU; each picks its GPU in the block function
    n = workers or os.cpu_count() or 1
    return local_cluster(
        n_workers=n,
        threads_per_worker=threads,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=address,
    )


def on_cluster(
    start: Callable[[Any], ProgressGenerator[Any]],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int = 1,
) -> ProgressGenerator[Any]:
    """Open a cluster (:func:`cluster_client`), run the generator ``start(client)`` on it and
    close the cluster at the end, on an error, or when this generator is closed (Cancel)."""
    with cluster_client(
        workers=workers,
        scheduler=scheduler or None,
        threads_per_worker=threads_per_worker,
        dashboard=False,
    ) as client:
        gen = start(client)
        try:
            return (yield from gen)
        finally:
            gen.close()


def dashboard_link(client: Any) -> str | None:
    """The dashboard address of the client's cluster, if it has one."""
    try:
        return client.dashboard_link
    except Exception:
        return None


# ----------------------------------------------------------------------------- the loop
@dataclass
class BlockRun:
    """What a blockwise run did.

    Attributes
    ----------
    blocks : int
        Blocks in the output.
    computed, skipped : int
        Blocks computed now, and blocks a resumed run found finished.
    seconds : float
        Wall time of the block phase.
    workers : dict
        Blocks computed per worker process id.
    """

    blocks: int
    computed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    workers: dict[int, int] | None = None


def run_blocks(
    client: Any,
    function: Callable[..., dict[str, Any]],
    blocks: Sequence[tuple[slice, ...]],
    done: set[int],
    *args: Any,
    key_prefix: str = "napari-restore-block",
) -> ProgressGenerator[BlockRun]:
    """Compute the blocks not in ``done`` on the cluster, yielding Progress per finished one.

    ``function(index, block, *args)`` runs on a worker: it computes block ``index``, writes it
    and records it (:meth:`BlockRecord.mark`), and returns a small dict (with ``pid``). Nothing
    large travels back to the client. Closing the generator cancels the blocks not yet done.

    Returns
    -------
    BlockRun
    """
    from distributed import as_completed

    pending = [i for i in range(len(blocks)) if i not in done]
    run = BlockRun(blocks=len(blocks), skipped=len(done), workers={})
    start = time.perf_counter()
    # One key per block and run: dask reruns the same task when a worker dies.
    token = uuid.uuid4().hex[:8]
    keys = [f"{key_prefix}-{token}-{i}" for i in pending]
    futures = [
        client.submit(function, i, blocks[i], *args, key=k, pure=False, retries=2)
        for i, k in zip(pending, keys, strict=True)
    ]
    finished = len(done)
    try:
        yield Progress(finished, len(blocks), stage="blocks")
        for future in as_completed(futures):
            result = future.result()
            finished += 1
            run.computed += 1
            pid = int(result.get("pid", 0))
            run.workers[pid] = run.workers.get(pid, 0) + 1
            future.release()
            yield Progress(finished, len(blocks), stage="blocks")
    finally:
        run.seconds = time.perf_counter() - start
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            client.cancel(unfinished)
    return run


__all__ = [
    "BlockRecord",
    "BlockRun",
    "ModelBlob",
    "block_grid",
    "block_shape_for",
    "cluster_client",
    "dashboard_link",
    "fingerprint",
    "on_cluster",
    "plan_blocks",
    "prepare_output",
    "resume_or_start",
    "run_blocks",
    "share_model",
    "worker_memory_limit",
    "worker_model",
]
