#!/usr/bin/env bash
# Standing GPU checks of kagglekit, on the frozen snapshot in .gpu/src (git archive HEAD).
#   device:  bash .gpu/run_gpu.sh                     (from the repo root; $OUT set by the tool)
#   dry run: DRY=1 PY=/work/main/.venv/bin/python OUT=/tmp/gpu_dry bash .gpu/run_gpu.sh   (CPU, tiny)
# Each step has its own timeout, clipped to what is left of BUDGET seconds; results under $OUT:
#   run.log (everything), summary.md, train.md, simulate.md, fb.md, refine.md, pytest.txt
set -u
ROOT=$(pwd)
G=$ROOT/.gpu
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
PY=${PY:-python3}
DRY=${DRY:-}
BUDGET=${BUDGET:-390}
START=$(date +%s)
SITE=${SITE:-/tmp/site}
W=${W:-/tmp/gpuwork}
export PYTHONUNBUFFERED=1 CUDA_CACHE_MAXSIZE=4294967296 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
exec > >(tee -a "$OUT/run.log") 2>&1
echo "| step | rc | seconds |" > "$OUT/summary.md"
echo "|---|---:|---:|" >> "$OUT/summary.md"

step() { # name cap outfile cmd...
  local name=$1 cap=$2 out=$3
  shift 3
  local now left t s rc e
  if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then return; fi
  cap=$((cap * ${CAPX:-1}))
  now=$(date +%s)
  left=$((START + BUDGET - now - 8))
  t=$cap
  [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 5 ]; then
    echo "### SKIP $name (budget spent)"
    echo "| $name | skipped (budget) | 0 |" >> "$OUT/summary.md"
    return
  fi
  echo "### STEP $name (timeout ${t}s) $(date -u +%T)"
  echo "+ $*"
  s=$(date +%s.%N)
  timeout -k 5 "$t" "$@" 2>&1 | tee -a "$out"
  rc=${PIPESTATUS[0]}
  e=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  echo "### END $name rc=$rc ${e}s"
  echo "| $name | $rc | $e |" >> "$OUT/summary.md"
}

# ---- setup: wheels (incl. the snapshot's own kagglekit wheel) + deepwave from its .tar.xz
rm -rf "$SITE" "$W"
mkdir -p "$SITE" "$W"
WHEELS="$G/whl/*.whl"
[ -n "$DRY" ] && WHEELS="$G/whl/kagglekit-*.whl ${ZWHL:-}"  # the local venv (py3.11) has the rest; cp312 wheels don't install here
step setup 90 /dev/null bash -c "$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE $WHEELS && \
  PYTHONPATH=$SITE $PY -c \"import tarfile,zstandard; r=zstandard.ZstdDecompressor(max_window_size=1<<28).stream_reader(open('$G/dw/deepwave-0.1.0.tar.zst','rb')); tarfile.open(fileobj=r,mode='r|').extractall('$SITE')\" && ls $SITE && echo installed"
export PYTHONPATH=$SITE:$G/src
cd "$G/src" || exit 1
if [ -n "$DRY" ]; then DEV=cpu; else DEV=cuda; fi
step env 60 /dev/null bash -c "date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv 2>&1 | head -3; \
  $PY -c \"import sys,torch,timm,deepwave,kagglekit,pydantic,albumentations,segmentation_models_pytorch as smp; \
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'avail', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); \
print('kagglekit from', kagglekit.__file__); print('deepwave', deepwave.__file__, 'timm', timm.__version__, 'smp', smp.__version__, 'pydantic', pydantic.__version__, 'albumentations', albumentations.__version__); \
from kagglekit.engine.task import get_task; print('task fwi ->', get_task('fwi').name)\""

if [ -n "$DRY" ]; then
  # tiny CPU settings: only checks that every command line is right
  FWD="--forward 2 --backward 2 --pml 10 --repeats 1"
  SIMARGS="--models 4 --batch 2 --reference 1"
  SIMARGS2="--models 4 --batch 4 --reference 1"
  TRAIN="--batch 2 --steps 1"
  CONFIGS="inversionnet"
  AMPS="off bf16"
  COMP="--per-file 1 --n-test 4"
  REF1="--samples 2 --iters 2 --batch-size 2"
  REF2="--samples 2 --iters 2 --batch-size 2"
else
  FWD="--forward 8 32 128 --backward 8 32 64 --pml 10 20 --repeats 3"
  SIMARGS="--models 256 --batch 32 --reference 2"
  SIMARGS2="--models 256 --batch 128 --reference 2"
  TRAIN="--batch 32 --steps 5"
  CONFIGS="unet hgnet_b2 convnext_small caformer_b36 inversionnet"
  AMPS="off bf16 fp16"
  COMP="--per-file 2 --n-test 32"
  REF1="--samples 32 --iters 20 --batch-size 8"
  REF2="--samples 32 --iters 20 --batch-size 32"
fi

# ---- (1) training / inference throughput, one process per config (an OOM or crash stays local)
for c in $CONFIGS; do
  step "train_$c" 45 "$OUT/train.md" $PY benchmarks/train_throughput.py --device $DEV $TRAIN --configs $c --amp $AMPS
done

# ---- (2) simulator: forward / forward+backward sweep (own helper), then the project's benchmark
step fb_sweep 60 "$OUT/fb.md" $PY "$G/fb_sweep.py" --device $DEV $FWD
step simulate_b32 45 "$OUT/simulate.md" $PY benchmarks/simulate_throughput.py --device $DEV $SIMARGS

# ---- (4) GPU tests
step pytest_gpu 130 "$OUT/pytest.txt" $PY -m pytest -m gpu -rA --durations=8 -p no:cacheprovider -q

# ---- (2) refinement: a small synthetic competition + a 1-epoch tiny_unet run as the start, then fwi_refine
step refine_prep 60 /dev/null bash -c "$PY -m kagglekit.cli fwi simulate $W/comp $COMP --seed 0 && \
  $PY -m kagglekit.cli fwi convert $W/comp/train_samples $W/comp/converted && \
  $PY -m kagglekit.cli train configs/fwi/tiny_unet.yaml --fold 0 data.root=$W/comp/converted out_dir=$W/runs train.epochs=1 && \
  find $W/runs -name best.pt"
RUN=$(dirname "$(find "$W/runs" -name best.pt | head -1)" 2>/dev/null)
echo "refine start run: $RUN"
step refine_b8 50 "$OUT/refine.md" $PY benchmarks/fwi_refine.py --run "$RUN" --competition $W/comp --device $DEV $REF1 --out $W/bench_refine

# ---- second points, if time is left
step simulate_b128 35 "$OUT/simulate.md" $PY benchmarks/simulate_throughput.py --device $DEV $SIMARGS2
step refine_b32 40 "$OUT/refine.md" $PY benchmarks/fwi_refine.py --run "$RUN" --competition $W/comp --device $DEV $REF2 --out $W/bench_refine

# ---- extra: NCCL init + all_reduce in a 1-rank torchrun (the repo's DDP test needs 2 GPUs)
if [ -z "$DRY" ]; then
  step nccl_1rank 40 "$OUT/pytest.txt" $PY -m torch.distributed.run --standalone --nproc_per_node=1 "$G/nccl_smoke.py"
fi

echo "total $(($(date +%s) - START)) s"
cat "$OUT/summary.md"
sleep 1
