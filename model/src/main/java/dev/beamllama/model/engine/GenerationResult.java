package dev.beamllama.model.engine;

/**
 * A finished request. {@code tokenIds} are the generated ids, including the stop token when
 * {@code finishReason} is {@link FinishReason#STOP} (as Hugging Face's {@code generate} returns it).
 */
public record GenerationResult(
    String id,
    int[] tokenIds,
    FinishReason finishReason,
    int promptTokens,
    long queuedNanos,
    long firstTokenNanos,
    long totalNanos) {

  public int completionTokens() {
    return tokenIds.length;
  }
}
