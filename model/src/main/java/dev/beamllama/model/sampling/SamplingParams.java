package dev.beamllama.model.sampling;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * How one request samples. The defaults are the Waktaverse-Llama-3-KO-8B-Instruct model card's:
 * temperature 0.9, top-k 40, top-p 0.9, repetition penalty 1.1, up to 1024 new tokens. {@code greedy}
 * (or temperature 0) takes the most likely token after the repetition penalty, as Hugging Face's
 * {@code do_sample=False}. {@code topK} 0 and {@code topP} 1 switch those filters off, as in
 * Hugging Face. The {@code seed} alone decides the random draws: the same seed, prompt and params
 * give the same tokens whatever else shares the batch.
 */
public record SamplingParams(
    double temperature,
    int topK,
    double topP,
    double repetitionPenalty,
    int maxNewTokens,
    long seed,
    boolean greedy) implements java.io.Serializable {

  public static final double DEFAULT_TEMPERATURE = 0.9;
  public static final int DEFAULT_TOP_K = 40;
  public static final double DEFAULT_TOP_P = 0.9;
  public static final double DEFAULT_REPETITION_PENALTY = 1.1;
  public static final int DEFAULT_MAX_NEW_TOKENS = 1024;

  public SamplingParams {
    if (!(temperature >= 0) || Double.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
    }
    if (topK < 0) {
      throw new IllegalArgumentException("top_k must be >= 0 (0 = off), got " + topK);
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("top_p must be in (0, 1] (1 = off), got " + topP);
    }
    if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
      throw new IllegalArgumentException("repetition_penalty must be a finite number > 0 (1 = off), got " + repetitionPenalty);
    }
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("max_new_tokens must be >= 1, got " + maxNewTokens);
    }
  }

  /** The model card's sampling settings with {@code seed}. */
  public static SamplingParams modelCard(long seed) {
    return new SamplingParams(DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P, DEFAULT_REPETITION_PENALTY,
        DEFAULT_MAX_NEW_TOKENS, seed, false);
  }

  /** Plain argmax decoding, Hugging Face's {@code do_sample=False} with no repetition penalty. */
  public static SamplingParams greedy(int maxNewTokens) {
    return new SamplingParams(1.0, 0, 1.0, 1.0, maxNewTokens, 0, true);
  }

  /** True when the next token is the argmax rather than a draw. */
  public boolean isGreedy() {
    return greedy || temperature == 0;
  }

  public SamplingParams withTemperature(double value) {
    return new SamplingParams(value, topK, topP, repetitionPenalty, maxNewTokens, seed, greedy);
  }

  public SamplingParams withTopK(int value) {
    return new SamplingParams(temperature, value, topP, repetitionPenalty, maxNewTokens, seed, greedy);
  }

  public SamplingParams withTopP(double value) {
    return new SamplingParams(temperature, topK, value, repetitionPenalty, maxNewTokens, seed, greedy);
  }

  public SamplingParams withRepetitionPenalty(double value) {
    return new SamplingParams(temperature, topK, topP, value, maxNewTokens, seed, greedy);
  }

  public SamplingParams withMaxNewTokens(int value) {
    return new SamplingParams(temperature, topK, topP, repetitionPenalty, value, seed, greedy);
  }

  public SamplingParams withSeed(long value) {
    return new SamplingParams(temperature, topK, topP, repetitionPenalty, maxNewTokens, value, greedy);
  }

  public SamplingParams withGreedy(boolean value) {
    return new SamplingParams(temperature, topK, topP, repetitionPenalty, maxNewTokens, seed, value);
  }

  /** Writes the settings that shape the draw under {@code json}'s keys (the CLI's and the run report's one form). */
  public void putSettings(ObjectNode json) {
    json.put("temperature", temperature);
    json.put("top_k", topK);
    json.put("top_p", topP);
    json.put("repetition_penalty", repetitionPenalty);
    json.put("max_new_tokens", maxNewTokens);
  }
}
