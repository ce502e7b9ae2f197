"""A small user project for the pipeline tests: steps in ``steps``, pipelines in ``flows``.

It lives outside the interpreter's installation, so loopml fingerprints its code by
source, and it is importable from worker processes because ``tests/pipelines/conftest.py``
puts this folder on ``sys.path`` before any worker (or forkserver) starts.
"""
