"""thresher's command line (click). Only the front end: the work is in ingest/ and dedupe/."""

import os

# thresher does no linear algebra; numpy's OpenBLAS would start a thread per core at import
# that spins for ~0.15 s of CPU (on a 2-core machine, taken from the run itself). A user's
# explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
