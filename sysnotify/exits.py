"""Exit codes of both command-line tools, `sysnotify-exporter` and `sysnotify-mailer`.

A script or a supervisor can then tell "fix the command or the config" (2, which is also what
argparse exits with on a bad command line) from "the operation itself failed" (1).
"""

from __future__ import annotations

OK = 0
# The operation failed: the store could not be opened or written, the data given was
# rejected (nothing applied), a delivery or a post to a running service did not succeed.
FAILED = 1
# The command line or the configuration is wrong; nothing was tried.
USAGE = 2
