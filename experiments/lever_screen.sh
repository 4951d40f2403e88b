#!/usr/bin/env bash
# The lever screen: each trial changes ONE recipe lever of configs/fashion_mnist/levers.yaml
# (the last, whiten-stem+bn-lr-8, two: the levers the first program kept)
# (the baseline: inverted residual ~0.3M, 6 epochs, seeds 0-2 on one validation split) and
# trains into experiments/results/fashion_mnist/levers/levers-<trial>/. Judged on validation
# accuracy only, each trial paired with the baseline seed by seed:
# `python experiments/lever_table.py` tabulates the finished trials, with the seconds to 94% from
# each trial's steps timed alone (`python experiments/lever_step_seconds.py`, nothing else on the
# cores: the runs' own clocks share them). Finished runs are skipped,
# so the script continues where it stopped. Run it from a clean commit: the results folder is a
# study folder, which refuses a tree with uncommitted changes.
#
#   nice -n 19 bash experiments/lever_screen.sh [TRIAL ...]
#
# About 55 minutes per trial on 2 CPU cores (3 seeds; see the config's header), 13 hours in all
# (the second program's trials took about 10 minutes a seed on an AMD EPYC).
# The values, one per lever:
#   ema-0.995: 6 epochs are ~2,530 steps; the average starts from the initial parameters
#     without bias correction, so 0.999 would still give them 0.999^2530 = 8% of its weight;
#     0.995 averages over the last ~200 steps (half an epoch) and forgets the start.
#   tta-flip, tta-shifts: the two views apart (flips cost 0.8 points as a training
#     augmentation at 6 epochs; the mirror at evaluation is a separate question).
#   smoothing-0: the baseline smooths by 0.1; this asks whether that earns its place (0.2 was
#     tried on one seed in the recipe search).
#   cutout-0.5-8: an 8x8 black square (a third of the side) on half the training images.
#   bn-momentum-0.99: running statistics over ~100 steps instead of the blocks' ~10.
#   bn-lr-8: BatchNorm scales and biases at 8x the rate (airbench: biases at 64x).
#   whiten-stem, dirac: airbench's data-derived stem and identity init of the 3x3s.
#   batch-256-linear: twice the batch with the peak rate scaled linearly (0.2).
#   onecycle: the schedule's shape (the linear decay showed nothing in the recipe search).
#   epochs-8: the length, a third longer.
#   whiten-stem+bn-lr-8: the two levers the first program kept, together, on the second
#     program (run after the single levers: it is the screen's check that their gains add).
#   baseline-2 (run only when named): the baseline again, for trials that run on other code or
#     another CPU class than levers-baseline did (the numerics differ between CPU classes from
#     the first steps): lever_table.py pairs each trial with the baseline that ran its program,
#     commit included. levers-baseline-2 ran from a6a1056 on an AMD EPYC, so the remaining
#     trials ran from a checkout of exactly that commit on that CPU class; a6a1056's copy of
#     this script lacks whiten-stem+bn-lr-8, so that trial ran as `jaxconv run` with its
#     --sets from the same checkout (each run's command.txt has the command).
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}

declare -A TRIALS=(
  [baseline]=""
  [baseline-2]=""
  [ema-0.995]="train.ema_decay=0.995"
  [tta-flip]="train.tta=flip"
  [tta-shifts]="train.tta=shifts"
  [smoothing-0]="train.label_smoothing=0"
  [cutout-0.5-8]="train.cutout_rate=0.5 train.cutout_size=8"
  [bn-momentum-0.99]="train.bn_momentum=0.99"
  [bn-lr-8]="train.bn_lr_scale=8"
  [whiten-stem]="train.stem_init=whiten"
  [dirac]="train.dirac_init=true"
  [batch-256-linear]="train.batch_size=256 train.lr_scaling=linear"
  [onecycle]="train.schedule=onecycle"
  [epochs-8]="train.epochs=8"
  [whiten-stem+bn-lr-8]="train.stem_init=whiten train.bn_lr_scale=8"
)
ORDER=(baseline ema-0.995 tta-flip tta-shifts smoothing-0 cutout-0.5-8 bn-momentum-0.99 bn-lr-8
       whiten-stem dirac batch-256-linear onecycle epochs-8 whiten-stem+bn-lr-8)

for trial in "${@:-${ORDER[@]}}"; do
  if [[ -z ${TRIALS[$trial]+set} ]]; then
    echo "unknown trial $trial; trials: ${ORDER[*]} baseline-2" >&2
    exit 2
  fi
  sets=(--set "name=levers-$trial")
  for kv in ${TRIALS[$trial]}; do sets+=(--set "$kv"); done
  "$JAXCONV" run configs/fashion_mnist/levers.yaml --quiet "${sets[@]}"
done
