"""Training, one concept per module:

- ``tasks``: the tasks (mlm, causal and the toy tasks), their batches and the toy tasks' ideal attention;
- ``config``: ``TrainConfig``, ``LiveSettings`` and every training default (the CLI and the Train page
  read them);
- ``step``: the training state, the optimizer and its learning-rate schedule, the loss, the pure step;
- ``parallel``: the compiled programs of one setup, data parallel over the CPU's devices (and over the
  devices of several processes: ``distributed`` joins a process to such a run);
- ``snapshots``: the probe input and the snapshots a live run records for replay;
- ``status``: the trainer's states and ``TrainerStatus``;
- ``runner``: the ``Trainer`` (Play/Pause/Step/Reset, in the caller's thread or a worker thread);
  ``history``: ``RunHistory``, what a run has recorded (metrics, evaluations, snapshots, speed);
- ``workers``: ``TrainingPool``, worker processes that many sessions' trainers share, with a limit on
  trainings at once and a queue, and runs kept for a reloaded page (``worker_link``: one worker process
  seen from the server; ``worker_process``: the worker's side);
- ``remote_trainer``: ``RemoteTrainer``, the proxy a page uses for a trainer in a worker.

The snapshots a run records for replay use the views' own maths (``interpret.analysis``: the embeddings'
principal-component plane, the prediction's probability), so a replayed step reads as the pages do.

May import: text, model, interpret.analysis.
"""
