package dev.beamllama.model.engine;

import dev.beamllama.model.sampling.SamplingParams;
import java.util.Objects;

/** One prompt to complete: its token ids and how to sample. {@code id} is the caller's, echoed back. */
public record GenerationRequest(String id, int[] promptIds, SamplingParams params) {
  public GenerationRequest {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(promptIds, "promptIds");
    Objects.requireNonNull(params, "params");
  }
}
