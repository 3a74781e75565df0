package dev.beamllama.model.engine;

/**
 * A finished request. {@code tokenIds} are the generated ids, including the stop token when
 * {@code finishReason} is {@link FinishReason#STOP} (as Hugging Face's {@code generate} returns it).
 * {@code promptTokensComputed} of the {@code promptTokens} went through the model for it: fewer where
 * the prefix cache held the prompt's beginning, more where preemption made it compute them again.
 * It depends on what else ran, so it is a statistic, never part of a record.
 */
public record GenerationResult(
    String id,
    int[] tokenIds,
    FinishReason finishReason,
    int promptTokens,
    int promptTokensComputed,
    long queuedNanos,
    long firstTokenNanos,
    long totalNanos) {

  public int completionTokens() {
    return tokenIds.length;
  }
}
