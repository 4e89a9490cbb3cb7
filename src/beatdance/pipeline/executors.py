"""Where ``prepare``'s per-pair work runs: in this process, a local process pool, or Ray actors on a cluster.

Every executor maps one picklable function over the pairs and yields results as they finish, so the
caller shows progress and gathers the skip report the same way whichever runs the work. The function
writes its clips to the store itself (atomically), so the store must be on a filesystem that every
worker sees; the driver only collects small results.

Ray runs long-lived actors (``_Worker``), one per CPU asked for. An actor keeps its process, and so the
encoders, the pose model and librosa's compiled kernels that the first pair loaded, for every later pair.
The driver gives each actor one pair at a time (``ray.wait``), which balances pairs of unequal length.
``ray.util.ActorPool`` is not used: after an actor dies (a decoder that crashes its process, a node
lost) it hands the dead actor the next pair, and every later pair would fail. Here the pair whose
actor died is reported and a new actor takes its place. Ray is imported only when it is asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from ..errors import ParameterError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")
# Each actor asks Ray for half a CPU: on a 2-core machine an actor pool asking for whole CPUs was seen to
# hang (../shared/DEPENDENCIES.md). As many actors as CPUs are started, so the CPUs are not oversubscribed.
ACTOR_CPUS = 0.5
_LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2  # results are a few kB; Ray's default takes 30 % of the memory


def map_unordered(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    on_lost: Callable[[T, str], R],
) -> Iterator[R]:
    """An iterator of ``fn(item)`` for every item, in the order they finish (the arguments are checked now,
    and Ray imported, before the first item runs).

    ``executor="local"``: in this process when ``workers`` is None or <= 1, else in a pool of ``workers``
    processes. ``executor="ray"``: on Ray actors, on the cluster at ``ray_address`` (``"auto"``: the one
    started on this machine with ``ray start``) or, without it, on a local Ray instance with ``workers``
    CPUs (default: the usable cores); when this process has already joined Ray (``ray.init``), that Ray.
    When an actor dies, its item yields ``on_lost(item, reason)`` and the rest go on."""
    if executor not in EXECUTORS:
        raise ParameterError(f"executor={executor!r} is not one of {list(EXECUTORS)}; pass --executor local or ray.")
    if ray_address is not None and executor != "ray":
        raise ParameterError(f"--ray-address {ray_address} needs --executor ray (the executor is {executor!r}).")
    if executor == "ray":
        if workers is not None and workers < 1:
            raise ParameterError(f"workers={workers} must be >= 1 with --executor ray (or unset: one per CPU).")
        return _map_ray(_import_ray(), fn, items, workers=workers, address=ray_address, on_lost=on_lost)
    if workers is None or workers <= 1:
        return map(fn, items)
    return _map_pool(fn, items, workers=workers)


def _map_pool(fn: Callable[[T], R], items: Sequence[T], *, workers: int) -> Iterator[R]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for fut in as_completed(futures):
            yield fut.result()


class _Worker:
    """A Ray actor: runs ``fn`` per item in its own working directory (the driver's)."""

    def __init__(self, fn: Callable[[Any], Any], cwd: str) -> None:
        os.chdir(cwd)  # relative input and store paths name the same files as on the driver (shared filesystem)
        self.fn = fn

    def run(self, item: Any) -> Any:
        return self.fn(item)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ParameterError(
            f"--executor ray needs Ray, which is not installed here ({exc}). Install it with "
            "`pip install 'beatdance[scale]'`, or use --executor local."
        ) from exc
    return ray


def _connect(ray: Any, *, address: str | None, workers: int | None) -> bool:
    """Join the cluster at ``address`` or start a local instance; True when this call started Ray."""
    if ray.is_initialized():
        return False
    if address is None:
        from ..threads import usable_cores

        ray.init(
            address="local",
            num_cpus=workers or usable_cores(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
        )
        return True
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ParameterError(
            f"--ray-address {address}: no Ray cluster answers there ({exc}). Start one with "
            "`ray start --head` and pass its address (or auto on one of its nodes), or leave "
            "--ray-address out to start a local Ray instance."
        ) from exc
    return True


def _actor_count(ray: Any, *, workers: int | None) -> int:
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def _map_ray(
    ray: Any,
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int | None,
    address: str | None,
    on_lost: Callable[[T, str], R],
) -> Iterator[R]:
    started = _connect(ray, address=address, workers=workers)
    actor_class = ray.remote(num_cpus=ACTOR_CPUS, max_restarts=0)(_Worker)
    fn_ref, cwd = ray.put(fn), os.getcwd()

    def new_actor() -> Any:
        return actor_class.options(scheduling_strategy="SPREAD").remote(fn_ref, cwd)

    todo = list(items)
    todo.reverse()  # popped from the end: the first item goes first
    actors = [new_actor() for _ in range(min(_actor_count(ray, workers=workers), len(todo)))]
    running: dict[Any, tuple[int, T]] = {}  # task -> (actor slot, item)
    try:
        for slot, actor in enumerate(actors):
            item = todo.pop()
            running[actor.run.remote(item)] = (slot, item)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            slot, item = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                ray.kill(actors[slot])
                actors[slot] = new_actor()
                result = on_lost(item, f"the Ray worker running it died ({type(exc).__name__}: {exc})")
            if todo:
                nxt = todo.pop()
                running[actors[slot].run.remote(nxt)] = (slot, nxt)
            yield result
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
