"""Lightning training glue shared by every project.

Typical use in a project's ``train`` verb::

    cfg = load_config(args.config, args.overrides)
    run_dir = prepare_run_dir(args.out, cfg, resume=args.resume, project="my_paper")
    seed_everything(cfg["seed"])
    trainer = build_trainer(run_dir, cfg["train"]["epochs"], device=args.device,
                            monitor="val/miou", mode="max")
    fit(trainer, module, train_loader, val_loader, resume=args.resume)
"""

from ensemblab.engine.checkpoints import (
    load_checkpoint,
    load_run_weights,
    load_weights,
    run_state_dict,
)
from ensemblab.engine.curves import plot_curves
from ensemblab.engine.runs import (
    RUN_RECORD,
    RunRecord,
    best_checkpoint,
    check_run,
    lightning_accelerator,
    open_run,
    prepare_run_dir,
    read_run_record,
    seed_everything,
    select_device,
    write_run_record,
)
from ensemblab.engine.trainer import build_trainer, fit, quiet_lightning

__all__ = [
    "RUN_RECORD", "RunRecord", "best_checkpoint", "build_trainer", "check_run", "fit",
    "lightning_accelerator", "load_checkpoint", "load_run_weights", "load_weights", "open_run",
    "plot_curves", "prepare_run_dir", "quiet_lightning", "read_run_record", "run_state_dict",
    "seed_everything", "select_device", "write_run_record",
]
