package dev.beamllama.model.engine;

import dev.beamllama.model.llama.ForwardTrace;

/**
 * Executes the model for the engine: one step computes the scheduled chunks' keys and values into
 * the paged cache and samples a token for each chunk that reaches the end of its sequence. Each
 * backend (CPU, CUDA) implements it; scheduling and block bookkeeping stay in the engine.
 *
 * <p>Contract every backend keeps: a sequence's logits depend only on its own tokens, never on
 * which other chunks share the step, so results do not depend on batching.
 */
public interface ModelRunner extends AutoCloseable {
  /**
   * The options this runner was sized with, the engine's defaults resolved ({@link
   * EngineOptions#withSizingDefaults}): the engine schedules with its {@code maxNumSeqs} and {@code
   * maxBatchTokens}, which the runner's buffers hold.
   */
  EngineOptions options();

  /** Cache blocks the runner allocated; the engine's block manager hands them out. */
  int kvBlocks();

  int blockSize();

  /** Longest sequence (prompt plus generated) the model and cache can hold. */
  int maxSequenceLength();

  int vocabularySize();

  /**
   * Runs one step: computes the batch's rows into the cache and returns the token drawn for each
   * of its samples, in order.
   */
  int[] step(StepBatch batch);

  /**
   * Whether {@link #launch} returns while the step still runs (on a GPU). The engine then lays out
   * and launches the next step before it learns this one's tokens, so the device never waits for
   * the host; the next step's rows may then hold pending tokens ({@link StepBatch#tokens()}).
   */
  default boolean overlapsSteps() {
    return false;
  }

  /**
   * Starts one step, as {@link #step}; the result gives its tokens. Two steps at most are launched
   * and not yet taken: step n + 2 is launched only after step n's tokens are taken.
   */
  default Launched launch(StepBatch batch) {
    int[] tokens = step(batch);
    return () -> tokens;
  }

  /** A launched step. */
  interface Launched {
    /** The token drawn for each of the step's samples, in order, once the step is done (waits for it). */
    int[] tokens();
  }

  /** Logits of every position of {@code promptIds}, computed without touching the engine's cache. */
  default float[][] promptLogits(int[] promptIds) {
    return promptLogits(promptIds, null);
  }

  /**
   * As {@link #promptLogits(int[])}, with {@code trace} (when not null) seeing every stage of the
   * forward pass, for each chunk of rows the runner computes at once.
   */
  float[][] promptLogits(int[] promptIds, ForwardTrace trace);

  /** A short description for logs: backend, dtype, threads. */
  String describe();

  @Override
  void close();
}
