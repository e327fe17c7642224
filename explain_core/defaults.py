"""Every default of the project in one place, each with the variable that overrides it.

One module (as RQ's `defaults.py`) so that the bot, the worker and the CLI can never disagree
on a limit or a name, and so that an operator reads all the knobs on one page.
`explain_core.settings` reads the environment; `.env.example` lists the same variables.
"""
from __future__ import annotations

# -- shared by the bot, the worker and the CLI --------------------------------------------
REDIS_URL = "redis://localhost:6379/0"  # REDIS_URL
# Redis Sentinel (a primary with a replica and automatic failover; explain_core/queue/connect.py), unset by default:
# REDIS_SENTINELS, the sentinels as comma-separated host:port, and REDIS_SENTINEL_MASTER, the primary's name in their
# `sentinel monitor` line. Set, they win over REDIS_URL's host and port; REDIS_URL still gives the primary's user,
# password, database and TLS (rediss://, which the sentinels then speak too). REDIS_SENTINEL_PASSWORD: the sentinels'.
SENTINEL_PORT = 26379  # of a sentinel listed without one
NAMESPACE = "qa"  # QA_NAMESPACE: the prefix of every Redis key (explain_core.queue.keys)
# QA_MODEL: hub name or local folder. A SQuAD 2.0 model, so it can say "no answer" (SQuAD 1.1 models always
# answer something); it ships TensorFlow weights (tf_model.h5). SQuAD 2.0 dev: EM 79.9, F1 82.9 (its model card).
MODEL = "deepset/roberta-base-squad2"
METHOD = "vanilla"  # the saliency method when none is named: best quality per gradient pass (docs/evaluation.md, 5)
MAX_PASSAGE_CHARS = 200_000  # QA_MAX_PASSAGE_CHARS: a long report, not a book
PRECISION = "float32"  # QA_PRECISION: float32 answers equal the pipeline's; or bfloat16
MODEL_CACHE = 4  # QA_MODEL_CACHE: models kept loaded per process (each costs its weights)
# QA_MEMORY_BUDGET: bytes of activations one pass may hold (bytes, or "1.5GB", "800MB"), from which every
# pass's batch is derived (explain_core/engine/budget.py). On a CPU 800 MB keeps a 12-layer base-size model
# (RoBERTa-base: 1.5 GB with its weights, traced) under 2.5 GB of RSS: one 384-token window per gradient pass,
# 5 for MiniLM-L6; forward passes take ~20 such windows (docs/benchmarks.md, "Memory").
MEMORY_BUDGET_CPU = 800_000_000
MEMORY_BUDGET_GPU = 4_000_000_000  # QA_MEMORY_BUDGET with a GPU: fits an 8 GB card beside the weights
JSONL_CHUNK = 16  # qa-explain --jsonl: lines answered together, then written (enough to share passes)
ALTERNATIVES = 3  # the top answers an explanation lists, the one shown included (the pipeline's top_k)
EAGER_CALLS = 8  # calls of each model graph run eagerly before it is traced (a trace costs seconds)

# -- the queue (Redis) ----------------------------------------------------------------------
MAX_BACKLOG = 10_000  # unfinished jobs before new ones are refused as busy
RESULT_RECLAIM_S = 60.0  # a result left unacked this long by a dead bot goes to another
MAX_PER_USER = 3  # QA_MAX_PER_USER: unanswered questions one person may have (one runs, the rest wait)
MAX_PER_CHANNEL = 20  # QA_MAX_PER_CHANNEL: unanswered questions in one channel or DM
# QA_MAX_PER_TEAM: unanswered questions of one workspace, so that one workspace's burst holds at most this
# many questions in front of another workspace's first (a deployment serving many; bot/workspaces.py)
MAX_PER_TEAM = 100
# QA_TEAM_SLOTS: with many workspaces, one workspace's jobs in the queue's stream at once; its further askers
# wait their turn outside it, so workspaces take turns (explain_core/queue/protocol.py). About the questions
# the workers answer at once (QA_BATCH_SIZE per worker): fewer leaves workers idle when one workspace asks alone.
TEAM_SLOTS = 8

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
# A PDF is read in a child process with these limits (bot/intake/extract.py); a file that needs more is refused.
PDF_CPU_S = 5  # QA_PDF_CPU_S: CPU seconds to read one PDF (an honest 50-page report needs under 1)
# QA_PDF_MEMORY_MB: address space of the reading process (Python and pypdf take ~55); the reader's own budgets on
# what a file holds (bot/intake/extract.py) stop the costliest file near 150 MB, so this is a backstop.
PDF_MEMORY_MB = 256
PDF_TIMEOUT_S = 10.0  # QA_PDF_TIMEOUT_S: wall-clock time to read one PDF, and to wait for a free reader
PDF_READERS = 2  # QA_PDF_READERS: PDFs read at once by one bot process, so a burst costs at most this many
DOWNLOAD_TIMEOUT_S = 10.0  # QA_DOWNLOAD_TIMEOUT_S: total time for one file download
DOC_CACHE_TTL_S = 24 * 3600  # QA_DOC_CACHE_TTL_S: how long a thread's document is kept
REPLY_DEADLINE_S = 600.0  # QA_REPLY_DEADLINE_S: a question not answered this long after its placeholder
#                            was posted is told so by the sweeper (and a later answer is dropped)
SLACK_RETRY_S = 600.0  # QA_SLACK_RETRY_S: how long a reply keeps retrying Slack 5xx, timeouts and 429s
#                        before the next way of reaching the asker is tried
DELIVERY_THREADS = 8  # QA_DELIVERY_THREADS: replies posted at once (one at a time per channel)
# QA_PROGRESS_AFTER_S: a placeholder shows where its question is (running, parts of a long document
# read) once the question has run this long; a quicker answer replaces it without a status edit.
PROGRESS_AFTER_S = 1.0
PROGRESS_EDIT_INTERVAL_S = 1.0  # status edits of one placeholder at most this often (chat.update's limits)
PROGRESS_EDITS_PER_MINUTE = 40  # status edits of all placeholders, per bot process (chat.update: ~50/min)
SWEEP_INTERVAL_S = 5.0  # how often the sweeper looks at the placeholders awaiting an answer
LOST_GRACE_S = 60.0  # a placeholder this old whose job Redis does not know is reported lost

# -- the bot's HTTP mode (bot/http.py) ------------------------------------------------------------
BIND_HOST = "0.0.0.0"  # BIND_HOST: Slack (through a TLS proxy) must reach it; every request is signed
WEB_CONCURRENCY = 1  # WEB_CONCURRENCY: serving processes, each with its own result consumer
# QA_HTTP_MAX_BODY_BYTES: larger requests are refused (413) from their Content-Length, unread.
# A message shortcut carries the whole message twice (text and blocks), URL-encoded: up to ~0.7 MB
# for a 40,000-character message (Slack's longest) in a non-Latin script; everything else is a few KB.
HTTP_MAX_BODY_BYTES = 1024 * 1024
HTTP_TIMEOUT_S = 5.0  # QA_HTTP_TIMEOUT_S: a request's headers, then its body, must each arrive within this
HTTP_BUFFER_BYTES = 32 * 1024 * 1024  # QA_HTTP_BUFFER_BYTES: request bodies held at once, all connections

# -- many workspaces: HTTP mode with Slack's OAuth install (bot/workspaces.py, bot/installs.py) ----------
# DATABASE_URL: the installations and OAuth states (an SQLAlchemy URL); unset, a SQLite file of one machine.
DATABASE_FILE = "data/installations.sqlite3"
OAUTH_STATE_S = 600  # QA_OAUTH_STATE_S: an install link's state is good this long, and once
TOKEN_CACHE_S = 60.0  # QA_TOKEN_CACHE_S: a workspace's bot token is looked up again after this long
# QA_TOKEN_ROTATION_MINUTES: with token rotation on, a bot token this close to expiring is refreshed
# before use (Bolt's token_rotation_expiration_minutes; Slack's tokens live 12 hours).
TOKEN_ROTATION_MINUTES = 120

# -- operations: metrics, health probes, logs (explain_core/ops.py) ---------------------------------
METRICS_HOST = "127.0.0.1"  # QA_METRICS_HOST: /metrics, /healthz, /readyz are unauthenticated: loopback unless told
# QA_METRICS_PORT: the worker's port; unset, no server (several workers on one host need one port each).
BOT_METRICS_PORT = 9101  # QA_BOT_METRICS_PORT: the bot's port (one per bot, all its serving processes); 0: none
LOG_FORMAT = "text"  # QA_LOG_FORMAT: text, or json (one object a line, with the question's key and job id)
