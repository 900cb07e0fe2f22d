"""The runtime: routes frozen requests to engines on lanes and brings results back to the main thread.

Engines are plain functions `run(request, ctx, models) -> result`, registered per request type.
Everything the worker produces (progress, previews, results, errors) is handed to `post`, the single
bridge to the main thread; the Qt layer passes a queued-signal poster, Qt-free tests a plain queue.
Job records are touched only on the main thread, inside posted calls.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from studio.core.context import TaskContext
from studio.core.errors import Cancelled, as_studio_error
from studio.runtime.jobs import Job, JobState
from studio.runtime.lanes import Lane
from studio.runtime.preload import first_import_guard, preload_torch_libraries

log = logging.getLogger(__name__)

Engine = Callable[[Any, TaskContext, Any], Any]
Post = Callable[[Callable[[], None]], None]

GPU = "gpu"
CPU = "cpu"


class EngineRegistry:
    """Maps request types to (engine, lane). Filled by the composition root and by plugins."""

    def __init__(self) -> None:
        self._engines: dict[type, tuple[Engine, str]] = {}

    def register(self, request_type: type, engine: Engine, lane: str = GPU) -> None:
        if lane not in (GPU, CPU):
            raise ValueError(f"unknown lane {lane!r}")
        self._engines[request_type] = (engine, lane)

    def lookup(self, request: Any) -> tuple[Engine, str]:
        for cls in type(request).__mro__:
            if cls in self._engines:
                return self._engines[cls]
        raise LookupError(f"no engine registered for {type(request).__name__}")

    def __contains__(self, request_type: type) -> bool:
        return request_type in self._engines


class _Work:
    """One job's execution on a lane thread."""

    def __init__(self, runtime: "Runtime", job: Job, engine: Engine, lane: str = GPU) -> None:
        self.runtime = runtime
        self.job = job
        self.engine = engine
        self.lane = lane

    def drop(self) -> None:
        self.runtime._post(lambda: self.runtime._finish(self.job, JobState.CANCELLED))

    def run(self) -> None:
        rt, job = self.runtime, self.job
        if job.token.cancelled:
            self.drop()
            return
        rt._post(lambda: rt._mark_running(job))
        if self.lane == GPU:
            preload_torch_libraries()  # once: the first job's `import torch` then holds the GIL far less
        ctx = TaskContext(
            job.token,
            on_progress=lambda f, t: rt._post(lambda: rt._progress(job, f, t)),
            on_preview=lambda img: rt._post(lambda: rt._preview(job, img)),
            min_interval=rt.progress_interval,
        )
        try:
            with first_import_guard(self.lane == GPU):
                result = self.engine(job.request, ctx, rt.models)
        except Cancelled:
            rt._post(lambda: rt._finish(job, JobState.CANCELLED))
        except BaseException as exc:  # the lane must keep serving whatever an engine does
            err = as_studio_error(exc)
            log.error("job %s (%s) failed: %s\n%s", job.id, job.title, err.user_message, err.detail)
            rt._post(lambda: rt._finish(job, JobState.FAILED, error=err))
        else:
            if job.token.cancelled:
                rt._post(lambda: rt._finish(job, JobState.CANCELLED))
            else:
                rt._post(lambda: rt._finish(job, JobState.DONE, result=result))


class Runtime:
    def __init__(
        self,
        engines: EngineRegistry,
        models: Any,
        post: Post,
        cpu_workers: int = 2,
        progress_interval: float = 0.1,
    ) -> None:
        self.engines = engines
        self.models = models
        self._post = post
        self.progress_interval = progress_interval
        self.lanes = {GPU: Lane(GPU, 1), CPU: Lane(CPU, cpu_workers)}
        self.jobs: dict[int, Job] = {}
        self._latest: dict[str, Job] = {}
        self._listeners: list[Callable[[Job], None]] = []
        self._closed = False

    # -- main-thread API -------------------------------------------------------------------
    def submit(
        self,
        request: Any,
        *,
        key: str | None = None,
        title: str = "",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[Any], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_preview: Callable[[Any], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Job:
        """Queue `request`. With a `key`, an older unfinished job of that key is cancelled (latest wins)."""
        if self._closed:
            raise RuntimeError("runtime is shut down")
        engine, lane = self.engines.lookup(request)
        job = Job(request, lane, key, title or type(request).__name__, on_result=on_result,
                  on_error=on_error, on_progress=on_progress, on_preview=on_preview,
                  on_cancelled=on_cancelled)
        if key is not None:
            old = self._latest.get(key)
            if old is not None and not old.state.finished:
                self.cancel(old)
            self._latest[key] = job
        self.jobs[job.id] = job
        self._notify(job)
        self.lanes[lane].put(_Work(self, job, engine, lane))
        return job

    def cancel(self, job: Job | int) -> None:
        if isinstance(job, int):
            job = self.jobs.get(job)
            if job is None:
                return
        if job.state.finished:
            return
        job.cancel()
        # A queued job leaves its lane at once so it never delays the ones behind it.
        lane = self.lanes[job.lane]
        for work in lane.pending():
            if work.job is job and lane.remove(work):
                self._finish(job, JobState.CANCELLED)
                break

    def reorder(self, job: Job, index: int) -> bool:
        """Move a queued job to position `index` among the queued jobs of its lane (0 = runs next).
        False when the job is no longer queued (it started or finished meanwhile)."""
        if job.state is not JobState.QUEUED:
            return False
        lane = self.lanes[job.lane]
        for work in lane.pending():
            if work.job is job:
                if lane.move(work, index):
                    self._notify(job)
                    return True
                return False
        return False

    def queued(self, lane: str = GPU) -> list[Job]:
        """The jobs waiting on `lane`, in the order they will run."""
        return [w.job for w in self.lanes[lane].pending() if not w.job.state.finished]

    def cancel_all(self) -> None:
        for job in list(self.jobs.values()):
            self.cancel(job)

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.state.finished]

    def subscribe(self, fn: Callable[[Job], None]) -> None:
        """`fn(job)` is called on the main thread whenever a job changes state or progress."""
        self._listeners.append(fn)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything and join all lane threads. Returns False if a thread would not stop."""
        if self._closed:
            return True
        self._closed = True
        self.cancel_all()
        ok = True
        for lane in self.lanes.values():
            ok = lane.stop(timeout) and ok
        return ok

    def threads(self):
        return [t for lane in self.lanes.values() for t in lane.threads]

    # -- main-thread callbacks (posted from lanes) ----------------------------------------
    def _notify(self, job: Job) -> None:
        for fn in list(self._listeners):
            try:
                fn(job)
            except Exception:
                log.exception("job listener failed")

    def _mark_running(self, job: Job) -> None:
        if job.state is JobState.QUEUED:
            job.state = JobState.RUNNING
            job.started_at = time.monotonic()
            self._notify(job)

    def _progress(self, job: Job, fraction: float, text: str) -> None:
        if job.state.finished:
            return
        job.progress, job.text = fraction, text
        self._notify(job)
        if job.on_progress and not job.token.cancelled:
            job.on_progress(fraction, text)

    def _preview(self, job: Job, image: Any) -> None:
        if job.on_preview and not job.state.finished and not job.token.cancelled:
            job.on_preview(image)

    def _finish(self, job: Job, state: JobState, result: Any = None, error: Any = None) -> None:
        if job.state.finished:
            return
        job.state = state
        job.finished_at = time.monotonic()
        job.result, job.error = result, error
        if state is JobState.DONE:
            job.progress = 1.0
        if job.key is not None and self._latest.get(job.key) is job:
            del self._latest[job.key]
        try:
            if state is JobState.DONE and job.on_result:
                job.on_result(result)
            elif state is JobState.FAILED and job.on_error:
                job.on_error(error)
            elif state is JobState.CANCELLED and job.on_cancelled:
                job.on_cancelled()
        except Exception:
            log.exception("callback of job %s failed", job.id)
        finally:
            self._notify(job)
            # Finished jobs are forgotten so a long session does not grow without bound.
            self.jobs.pop(job.id, None)
