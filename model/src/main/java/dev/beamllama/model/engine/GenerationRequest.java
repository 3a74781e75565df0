package dev.beamllama.model.engine;

import dev.beamllama.model.sampling.SamplingParams;
import java.util.Objects;

/**
 * One prompt to complete: its token ids and how to sample. {@code id} is the caller's, echoed back;
 * {@code source} optionally names who submitted it (a pipeline bundle, say), so the engine can report
 * how many sources share its steps.
 */
public record GenerationRequest(String id, int[] promptIds, SamplingParams params, String source) {
  public GenerationRequest {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(promptIds, "promptIds");
    Objects.requireNonNull(params, "params");
  }

  public GenerationRequest(String id, int[] promptIds, SamplingParams params) {
    this(id, promptIds, params, null);
  }
}
