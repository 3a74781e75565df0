package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.model.config.GenerationConfig;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.List;
import java.util.Optional;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.jupiter.api.Test;

/** The start-up line says which sampling ran and where each setting came from. */
class StartupLineTest {
  /** Meta-Llama-3-8B-Instruct's generation_config.json, which fine-tunes often copy. */
  private static final GenerationConfig LLAMA3_INSTRUCT = new GenerationConfig(List.of(128001, 128009), Optional.of(128000),
      Optional.of(0.6), Optional.of(0.9), Optional.empty(), Optional.empty());

  @Test
  void theJobsDefaultsAreTheModelCards() {
    PipelineOptionsFactory.register(BeamLlamaOptions.class);
    BeamLlamaOptions o = PipelineOptionsFactory.fromArgs("--input=x", "--output=y", "--model=z").as(BeamLlamaOptions.class);
    SamplingParams job = new SamplingParams(o.getTemperature(), o.getTopK(), o.getTopP(), o.getRepetitionPenalty(), o.getMaxNewTokens(), 0,
        false);
    assertEquals(SamplingParams.modelCard(0), job);
    assertEquals("sampling temperature 0.9, top_k 40, top_p 0.9, repetition_penalty 1.1, max_new_tokens 1024 (model card defaults)",
        StartupLine.sampling(job));
  }

  @Test
  void flagsAreNamedAndGenerationConfigValuesThatDoNotRunAreCalledOut() {
    SamplingParams flagged = SamplingParams.modelCard(0).withTopK(50);
    assertEquals("sampling temperature 0.9, top_k 50, top_p 0.9, repetition_penalty 1.1, max_new_tokens 1024 "
        + "(top_k from flags, the rest model card defaults)", StartupLine.sampling(flagged));
    assertEquals("; generation_config.json's temperature 0.6 not applied (the defaults are the model card's; flags change them)",
        StartupLine.notApplied(flagged, LLAMA3_INSTRUCT));
    assertEquals("", StartupLine.notApplied(flagged.withTemperature(0.7), LLAMA3_INSTRUCT), "a flag already overrode it");
    assertEquals("", StartupLine.notApplied(flagged, GenerationConfig.none()));
  }
}
