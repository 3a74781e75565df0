package dev.beamllama.model.llama;

/**
 * Sees a forward pass's activations stage by stage, so that two backends can be compared at the
 * first stage where they part (scripts/gpu-check). For diagnosis only: the engines pass none.
 */
public interface ForwardTrace {
  /** The points of a forward pass both backends compute, in order; each layer repeats those from ATTENTION_NORM to MLP_RESIDUAL. */
  enum Stage {
    EMBEDDING,
    ATTENTION_NORM,
    /** The query, key and value projections, before the rotary embedding. */
    Q,
    K,
    V,
    Q_ROTATED,
    K_ROTATED,
    /** Attention's output, before the output projection. */
    ATTENTION,
    ATTENTION_OUTPUT,
    /** The residual stream after the attention block's output joins it. */
    ATTENTION_RESIDUAL,
    MLP_NORM,
    /** silu(gate) * up. */
    MLP_ACTIVATION,
    MLP_OUTPUT,
    /** The residual stream after the MLP's output joins it: the layer's output. */
    MLP_RESIDUAL,
    FINAL_NORM,
    LOGITS
  }

  /**
   * {@code stage} of {@code layer} (-1 for the stages outside the layers) holds {@code rows} rows of
   * {@code width} values: the first {@code rows * width} of {@code values}, row-major.
   */
  void stage(int layer, Stage stage, float[] values, int rows, int width);
}
