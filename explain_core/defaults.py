"""Every default of the project in one place, each with the variable that overrides it.

One module (as RQ's `defaults.py`) so that the bot, the worker and the CLI can never disagree
on a limit or a name, and so that an operator reads all the knobs on one page.
`explain_core.settings` reads the environment; `.env.example` lists the same variables.
"""
from __future__ import annotations

# -- shared by the bot, the worker and the CLI --------------------------------------------
REDIS_URL = "redis://localhost:6379/0"  # REDIS_URL
NAMESPACE = "qa"  # QA_NAMESPACE: the prefix of every Redis key (explain_core.queue.keys)
MODEL = "distilbert-base-cased-distilled-squad"  # QA_MODEL: hub name or local folder
METHOD = "vanilla"  # the saliency method when none is named (the seed's)
MAX_PASSAGE_CHARS = 200_000  # QA_MAX_PASSAGE_CHARS: a long report, not a book
PRECISION = "float32"  # QA_PRECISION: float32 answers equal the pipeline's; or bfloat16
MODEL_CACHE = 4  # QA_MODEL_CACHE: models kept loaded per process (each costs its weights)

# -- the queue (Redis) ----------------------------------------------------------------------
MAX_BACKLOG = 10_000  # unfinished jobs before new ones are refused as busy
RESULT_RECLAIM_S = 60.0  # a result left unacked this long by a dead bot goes to another

# -- the worker -------------------------------------------------------------------------------
BATCH_SIZE = 8  # QA_BATCH_SIZE: jobs answered together in shared forward passes
VISIBILITY_TIMEOUT_S = 120.0  # QA_VISIBILITY_TIMEOUT_S: must exceed the slowest job
MAX_ATTEMPTS = 3  # QA_MAX_ATTEMPTS: deliveries before a failing job is dead-lettered
BLOCK_MS = 1000  # QA_BLOCK_MS: idle wait per read, and so how soon SIGTERM is noticed

# -- the bot ----------------------------------------------------------------------------------
BOT_MODE = "socket"  # BOT_MODE: socket (no public URL needed) or http
PORT = 3000  # PORT: HTTP mode, path /slack/events
SLACK_API_URL = "https://slack.com/api/"  # SLACK_API_URL: tests point it at a local fake
MAX_FILE_BYTES = 10 * 1024 * 1024  # QA_MAX_FILE_BYTES: checked before downloading a byte
MAX_PDF_PAGES = 50  # QA_MAX_PDF_PAGES
DOWNLOAD_TIMEOUT_S = 10.0  # QA_DOWNLOAD_TIMEOUT_S: total time for one file download
DOC_CACHE_TTL_S = 24 * 3600  # QA_DOC_CACHE_TTL_S: how long a thread's document is kept
PLACEHOLDER_WAIT_S = 10.0  # QA_PLACEHOLDER_WAIT_S: how long a result waits for its placeholder
