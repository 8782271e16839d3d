"""From the outbox to an SMTP server: the queue, the worker, the message, the SMTP client and
the wake-ups."""
