# Sourced by bench/gpu.sh (same variables and `measure`): the GPU figures of
# the saliency and quality issues.

# Saliency: images per pass for SmoothGrad's samples, IG's steps and the
# metric curves (32 random orders), every method on one photo.
for n in 16 32 64; do
  measure "saliency_batch$n" CLASSVIZ_SAMPLE_BATCH=$n -- $BIN saliency --image tests/data/coffee.png \
    --method all --json --device "$DEVICE" --out "$work/sal$n" $SALIENCY_FLAGS
done

# MaCo: how many views a GPU affords, on a subset, at the preset's steps.
for views in 4 16; do
  measure "maco_views$views" -- $BIN --class $MACOSUB --preset maco --views $views --iters $NAT_ITERS \
    --batch 64 "${run[@]}" --out "$work/maco$views"
  score_dir "maco_views${views}_lite1" "$work/maco$views"
done
