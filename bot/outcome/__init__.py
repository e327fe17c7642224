"""The outcome of a question: exactly one final message per question. Tracking the
placeholders and the one outcome claim, every Slack call of the reply flow, the result
consumer, the sweeper that settles what nobody else will, live progress, and the background
threads that run them. Everything that can speak to the asker after the ack is here, so the
"one visible outcome" rule can be read in one package."""
