"""Pre-infusion expectations assistant for ketamine-infusion clinics."""

import os

# numpy's OpenBLAS runs even a small matrix-vector product (a question against the ~2,900 vetted,
# out-of-scope and safety vectors) on a thread per core, and those threads spin after each call,
# taking the cores the model's encode needs: on 2 cores the answer at concurrency 1 went from
# 6.5 ms to 19 ms (docs/benchmarks.md). On one thread the products take microseconds. It must be
# set before numpy is first imported, which is why it lives here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
