"""The command line, ``python -m explorer ...``: the scriptable face of the explorer, at the top of the stack.

- ``main``: the parser and the commands (inspect, predict, similarity, bench, corpus, trace, train);
- ``trace``: the ``trace`` command, one token through one layer with every number (``explorer.interpret.trace``);
- ``train``: the ``train`` command (its defaults are those of ``explorer.training.config``);
- ``processes``: starting and watching the processes of a training over several processes (each
  abrupt end explained in one line);
- ``benchmark``: the inference benchmark behind ``bench``.

Text reaches a model through ``explorer.pipeline``, as in the app.

May import: any layer.
"""
