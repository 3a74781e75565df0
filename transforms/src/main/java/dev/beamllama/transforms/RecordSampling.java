package dev.beamllama.transforms;

import dev.beamllama.io.PromptRecord;
import dev.beamllama.model.sampling.SamplingParams;

/**
 * A record's sampling settings: the job's, overridden field by field by the record's own. Resolved
 * here only, so the context check of {@link EncodePrompt} and the requests of {@link Generate} see
 * the same {@code max_new_tokens}.
 */
public final class RecordSampling {
  private RecordSampling() {}

  /** The settings {@code record} generates with (the seed is the job's; each sample derives its own). */
  public static SamplingParams of(SamplingParams job, PromptRecord record) {
    PromptRecord.SamplingOverrides o = record.overrides();
    SamplingParams p = job;
    if (o == null) {
      return p;
    }
    if (o.maxNewTokens() != null) {
      p = p.withMaxNewTokens(o.maxNewTokens());
    }
    if (o.temperature() != null) {
      p = p.withTemperature(o.temperature());
    }
    if (o.topK() != null) {
      p = p.withTopK(o.topK());
    }
    if (o.topP() != null) {
      p = p.withTopP(o.topP());
    }
    if (o.repetitionPenalty() != null) {
      p = p.withRepetitionPenalty(o.repetitionPenalty());
    }
    return p;
  }

  /** How many samples a record asks for ({@code n}, default 1). */
  public static int samplesOf(PromptRecord record) {
    PromptRecord.SamplingOverrides o = record.overrides();
    return o != null && o.n() != null ? o.n() : 1;
  }
}
