# Settings shared by scripts/gate.sh and scripts/full_protocol.sh (sourced, not run): the grids that
# put settings close to every target for both codecs (docs/results.md, "A denser grid").
DATA=${ODIC_DATA:-../shared/data}
ODIC=.venv/bin/odic
KODAK_FAST_Q=q=2/8/14/20/25/32/40/48/55/65/90                     # odic, fast encoder, Kodak
HEVC_DENSE=hevc-raw:q=3/8/11/14/17/20/23/26/30/34/38/48/58        # the BD-rate reference, Kodak
REFINE_MACHINE=refine=50:refine_shift=8                            # the refined encoder for classifiers
