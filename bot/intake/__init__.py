"""Intake: from what a person typed or attached to a queued job. Parsing Slack's text, reading
files (PDFs in a limited child process), the documents a thread's questions are about, and
`submit` (validate, admit, placeholder, enqueue). Everything a question must pass before a
worker sees it is here, so every entry point applies the same rules."""
