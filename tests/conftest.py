"""Test-wide settings.

The models in these tests are tiny (at most ~2,000 parameters): intra-op threads cannot speed them
up, and on a loaded machine OpenMP threads spin-wait for each other. Measured on the 2-core test
machine at load average ~4.5 (other sessions): the Hessian suite took 248 s with torch's default
2 threads and 13 s with one.
"""
import torch

torch.set_num_threads(1)
