"""A progress bar over environment steps, with the latest exploitability and return."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class StepProgress(pl.Callback):
    """tqdm bar in env steps (rank 0), postfix: last exploitability and episodic return."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        from tqdm.auto import tqdm

        if trainer.global_rank != 0:
            return
        batch = (module.params.n_steps or module.game.Nt) * module.num_envs * trainer.world_size
        self.bar = tqdm(total=module.iterations * batch, unit="step", unit_scale=True,
                        desc=f"{module.algo} {module.env_id.split('/')[-1]}", initial=module.env_steps)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(module.env_steps - self.bar.n)
        ret = module.env.return_queue[-1] if module.env.return_queue else float("nan")
        latest = module.latest or {}
        self.bar.set_postfix(exploitability=f"{latest.get('exploitability', float('nan')):.3e}",
                             ret=f"{ret:.3f}", refresh=False)

    def on_fit_end(self, trainer: pl.Trainer, module: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
