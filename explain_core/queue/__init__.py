"""The job queue: typed messages, the Redis Streams protocol and every Redis key.

Redis only, no TensorFlow: the bot and the worker both import this package.
"""
from explain_core.queue.connect import RedisTarget
from explain_core.queue.keys import RESULTS_GROUP, WORKER_GROUP, Keys
from explain_core.queue.messages import (
                                         SCHEMA_VERSION,
                                         DeadLetter,
                                         Job,
                                         JobError,
                                         JobOptions,
                                         JobResult,
                                         Progress,
                                         ReplyTo,
                                         ResultImage,
                                         WorkerInfo,
)
from explain_core.queue.protocol import (
                                         PASSAGE_INLINE_BYTES,
                                         Enqueued,
                                         Finished,
                                         JobEntry,
                                         JobQueue,
                                         QueueStats,
                                         ResultEntry,
                                         consumer_name,
)

__all__ = [
    "PASSAGE_INLINE_BYTES", "RESULTS_GROUP", "SCHEMA_VERSION", "WORKER_GROUP", "DeadLetter", "Enqueued", "Finished",
    "Job", "JobEntry", "JobError", "JobOptions", "JobQueue", "JobResult", "Keys", "Progress", "QueueStats",
    "RedisTarget", "ReplyTo", "ResultEntry", "ResultImage", "WorkerInfo", "consumer_name",
]
