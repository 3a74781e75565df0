package dev.beamllama.model.engine;

import dev.beamllama.model.config.LlamaConfig;
import java.io.Serializable;

/**
 * The longest sequence, prompt plus generated tokens, an engine holds: the smaller of the model's
 * positions and its KV cache's capacity for one sequence ({@link CacheSizing}). A job plans with it
 * before any engine loads (EncodePrompt refuses a prompt that does not fit beside its
 * max_new_tokens, or cuts it to fit), and an engine is checked at load to hold at least as much
 * ({@link #requireHeldBy}): a record the job accepted never fails, or stops early, for want of cache.
 *
 * <p>{@code cacheBytes} is the KV cache the context was planned with, 0 when its size is not known
 * before the engine loads (a CUDA engine sizing it from free GPU memory): the model's positions are
 * then the context, which that engine must hold.
 */
public record EngineContext(int tokens, int positions, long cacheBytes) implements Serializable {

  /** The context of an engine on {@code config} whose KV cache gets {@code cacheBytes} (0: unknown until it loads). */
  public static EngineContext of(LlamaConfig config, EngineOptions options, boolean bf16, long cacheBytes) {
    int positions = config.maxPositionEmbeddings();
    int tokens = cacheBytes > 0 ? CacheSizing.of(config, options, bf16, cacheBytes).maxSequenceLength() : positions;
    return new EngineContext(tokens, positions, cacheBytes);
  }

  /** What bounds it, for messages: "the model's context of 4096 tokens", or the cache's capacity beside the positions. */
  public String describe() {
    return tokens < positions
        ? "the engine's context of " + tokens + " tokens (the KV cache's capacity for one sequence, which --kvCacheBytes raises; "
            + "the model's positions: " + positions + ")"
        : "the model's context of " + tokens + " tokens";
  }

  /**
   * Fails, saying which flag to change, when {@code runner}'s cache holds less of one sequence than
   * this context: only a CUDA engine can, its cache being what the GPU's memory leaves.
   */
  public void requireHeldBy(ModelRunner runner) {
    int held = runner.maxSequenceLength();
    if (held >= tokens) {
      return;
    }
    String planned = cacheBytes > 0
        ? tokens + " tokens of a " + cacheBytes + "-byte KV cache (--kvCacheBytes, or the CPU engine's default under --engine=auto), "
            + "more than the GPU's memory leaves for it"
        : "the model's " + positions + " positions (--kvCacheBytes 0 on --engine=cuda)";
    throw new IllegalStateException("the engine's KV cache holds " + held + " tokens of one sequence, less than the context its job "
        + "plans with: " + planned + "; raise --gpuMemoryUtilization, or set a smaller --kvCacheBytes for a shorter context "
        + "(longer prompts are then prompt_too_long dead letters, or cut by --overlong=truncate)");
  }
}
