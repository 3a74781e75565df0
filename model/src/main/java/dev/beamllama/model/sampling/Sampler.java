package dev.beamllama.model.sampling;

/**
 * Picks the next token from a row of logits with Hugging Face's semantics: repetition penalty over
 * prompt and generated ids, then (when sampling) temperature, top-k, top-p, softmax and a
 * multinomial draw; when greedy, the argmax after the penalty. The draw is inverse-CDF over token
 * ids in ascending order with {@link SeededRandom}, so it depends on (seed, step) only.
 *
 * <p>Not thread-safe: it owns scratch buffers; use one per thread.
 */
public final class Sampler {
  private final float[] probs;
  private float[] penaltyScratch = new float[256];

  public Sampler(int vocabularySize) {
    this.probs = new float[vocabularySize];
  }

  /**
   * Chooses a token from {@code logits} (overwritten). {@code history[0..historyLength)} is the
   * prompt plus the tokens generated so far; {@code step} is the index of the token being chosen.
   */
  public int sample(float[] logits, int[] history, int historyLength, SamplingParams params, int step) {
    if (params.repetitionPenalty() != 1.0) {
      if (penaltyScratch.length < historyLength) {
        penaltyScratch = new float[Math.max(historyLength, penaltyScratch.length * 2)];
      }
      LogitsProcessors.repetitionPenalty(logits, history, historyLength, (float) params.repetitionPenalty(), penaltyScratch);
    }
    if (params.isGreedy()) {
      return argmax(logits);
    }
    if (params.temperature() != 1.0) {
      LogitsProcessors.temperature(logits, (float) params.temperature());
    }
    LogitsProcessors.topK(logits, params.topK());
    LogitsProcessors.topP(logits, (float) params.topP());
    LogitsProcessors.softmax(logits, probs);
    return draw(probs, SeededRandom.uniform(params.seed(), step));
  }

  /** The first index of the largest value, as torch.argmax. */
  public static int argmax(float[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) {
      if (values[i] > values[best]) {
        best = i;
      }
    }
    return best;
  }

  /** Inverse CDF: the first token whose cumulative probability exceeds {@code u} times the total. */
  static int draw(float[] probs, double u) {
    double total = 0;
    int lastPossible = -1;
    for (int i = 0; i < probs.length; i++) {
      if (probs[i] > 0) {
        total += probs[i];
        lastPossible = i;
      }
    }
    double target = u * total;
    double cumulative = 0;
    for (int i = 0; i < probs.length; i++) {
      if (probs[i] > 0) {
        cumulative += probs[i];
        if (cumulative > target) {
          return i;
        }
      }
    }
    return lastPossible;
  }
}
