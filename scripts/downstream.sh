# What the run_downstream_*.sh scripts share; sourced, not run. Checks the
# variables every task needs, builds the binary unless NEZHA names one, and
# puts the optional checkpoint flags in the array `init`.
#
#   downstream_setup "train.tsv, dev.tsv, test.tsv"   # what DATA_DIR holds
downstream_setup() {
    : "${DATA_DIR:?set DATA_DIR ($1)}"
    : "${VOCAB_FILE:?set VOCAB_FILE}"
    : "${OUTPUT_DIR:?set OUTPUT_DIR}"
    if [[ -z "${NEZHA:-}" ]]; then
        source scripts/libtorch.sh
        cargo build --release --quiet --bin nezha
        NEZHA=target/release/nezha
    fi
    init=()
    [[ -n "${INIT_CHECKPOINT:-}" ]] && init+=(--init_checkpoint "$INIT_CHECKPOINT")
    [[ -n "${BERT_CONFIG_FILE:-}" ]] && init+=(--bert_config_file "$BERT_CONFIG_FILE")
    return 0
}
