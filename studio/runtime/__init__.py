"""Lanes, scheduler and job records. Qt-free: results reach the main thread through an injected `post`."""
from studio.runtime.jobs import Job, JobState
from studio.runtime.scheduler import EngineRegistry, Runtime

__all__ = ["EngineRegistry", "Job", "JobState", "Runtime"]
