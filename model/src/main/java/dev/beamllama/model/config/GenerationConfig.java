package dev.beamllama.model.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * {@code generation_config.json}: what the checkpoint says about stopping. Its sampling fields are
 * kept for display only: our defaults are the model card's (see {@code SamplingParams}).
 */
public record GenerationConfig(
    List<Integer> eosTokenIds,
    Optional<Integer> bosTokenId,
    Optional<Double> temperature,
    Optional<Double> topP,
    Optional<Integer> topK,
    Optional<Double> repetitionPenalty) {

  public static final String FILE = "generation_config.json";

  public static GenerationConfig none() {
    return new GenerationConfig(List.of(), Optional.empty(), Optional.empty(), Optional.empty(), Optional.empty(), Optional.empty());
  }

  /** Reads {@code file}, or returns {@link #none()} when the checkpoint has no generation config. */
  public static GenerationConfig readIfPresent(Path file) {
    if (!Files.exists(file)) {
      return none();
    }
    Json json = Json.read(file);
    return new GenerationConfig(
        List.copyOf(json.intOrIntList("eos_token_id")),
        json.optionalInt("bos_token_id"),
        json.optionalDouble("temperature"),
        json.optionalDouble("top_p"),
        json.optionalInt("top_k"),
        json.optionalDouble("repetition_penalty"));
  }
}
