"""Test-only: put this folder on PYTHONPATH and every llama.cpp worker process dies at once by SIGSEGV.

That is what a llama.cpp build with kernels the CPU mishandles does on its first job (issue 12); the
node under test is unchanged, only the environment its worker inherits is hostile.
"""

import os
import signal
import sys

if "camelid.compute.worker" in sys.orig_argv:
    os.kill(os.getpid(), signal.SIGSEGV)
