"""What people see and touch: Block Kit for every message, the App Home tab, the record an
answer's buttons read, and what the buttons do. No Slack call ordering or retries here; the
outcome package decides when a message is sent, this one what it says."""
