package dev.beamllama.pipeline;

import dev.beamllama.io.PromptIO;
import dev.beamllama.transforms.EncodePrompt;
import dev.beamllama.transforms.Generate;
import dev.beamllama.transforms.SkipCompletedSamples;
import java.io.PrintStream;
import java.util.Locale;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.DistributionResult;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;

/** What a finished job did, from its Beam metrics: the summary printed at the end and what tests check. */
public record JobSummary(
    long recordsRead,
    long completionsWritten,
    long deadLetters,
    long promptTokens,
    long promptTokensComputed,
    long generatedTokens,
    long engineLoads,
    long samplesResumed,
    long samplesOfOtherSettings,
    long samplesFromJournal,
    long promptsTruncated,
    SortedMap<String, Long> unreadFields,
    long maxBundlesPerEngineStep,
    DistributionResult latencyMs,
    double wallSeconds) {

  static JobSummary of(PipelineResult result, double wallSeconds) {
    MetricQueryResults m = result.metrics().queryMetrics(MetricsFilter.builder().build());
    DistributionResult bundles = distribution(m, Generate.class.getName(), Generate.MAX_BUNDLES_PER_STEP);
    return new JobSummary(
        counter(m, PromptIO.class.getName(), PromptIO.RECORDS_READ),
        counter(m, BeamLlamaPipeline.class.getName(), BeamLlamaPipeline.RECORDS_WRITTEN),
        counter(m, BeamLlamaPipeline.class.getName(), BeamLlamaPipeline.RECORDS_FAILED),
        counter(m, Generate.class.getName(), Generate.PROMPT_TOKENS),
        counter(m, Generate.class.getName(), Generate.PROMPT_TOKENS_COMPUTED),
        counter(m, Generate.class.getName(), Generate.GENERATED_TOKENS),
        counter(m, Generate.class.getName(), Generate.ENGINE_LOADS),
        counter(m, SkipCompletedSamples.class.getName(), SkipCompletedSamples.SAMPLES_RESUMED),
        counter(m, SkipCompletedSamples.class.getName(), SkipCompletedSamples.SAMPLES_OF_OTHER_SETTINGS),
        counter(m, Generate.class.getName(), Generate.SAMPLES_FROM_JOURNAL),
        counter(m, EncodePrompt.class.getName(), EncodePrompt.PROMPTS_TRUNCATED),
        unreadFields(m),
        bundles == null || bundles.getCount() == 0 ? 0 : bundles.getMax(),
        distribution(m, Generate.class.getName(), Generate.LATENCY_MS),
        wallSeconds);
  }

  void print(JobConfig job, PrintStream out) {
    out.printf(Locale.ROOT, "beam-llama: %d records read, %d completions written, %d dead letters%n", recordsRead, completionsWritten, deadLetters);
    if (samplesResumed > 0) {
      out.printf(Locale.ROOT, "beam-llama: %d samples were already written by the run resumed from, and not generated again%n", samplesResumed);
    }
    if (samplesOfOtherSettings > 0) {
      out.printf(Locale.ROOT, "beam-llama: %d completions under --resumeFrom were written with other settings (model, task, seed or "
          + "sampling): not this job's, so those samples were generated%n", samplesOfOtherSettings);
    }
    if (samplesFromJournal > 0) {
      out.printf(Locale.ROOT, "beam-llama: %d samples were taken from the journal (finished by an earlier attempt), not generated again%n",
          samplesFromJournal);
    }
    if (!unreadFields.isEmpty()) {
      out.printf(Locale.ROOT, "beam-llama: fields no prompt or setting reads, ignored: %s%n", unreadFields.entrySet().stream().limit(12)
          .map(f -> f.getKey() + " (" + f.getValue() + (f.getValue() == 1 ? " record)" : " records)"))
          .collect(Collectors.joining(", ")) + (unreadFields.size() > 12 ? ", ..." : ""));
    }
    if (promptsTruncated > 0) {
      out.printf(Locale.ROOT, "beam-llama: %d prompts were cut in their document's middle to fit the context (--overlong=truncate); "
          + "their records say prompt_truncated%n", promptsTruncated);
    }
    out.printf(Locale.ROOT, "beam-llama: %d prompt tokens, %d generated tokens, %.1f generated tokens/s, wall time %.1f s%n",
        promptTokens, generatedTokens, generatedTokens / wallSeconds, wallSeconds);
    if (promptTokens > 0) {
      out.printf(Locale.ROOT, "beam-llama: %d of the %d prompt tokens computed (the rest taken from the prefix cache)%n",
          promptTokensComputed, promptTokens);
    }
    if (latencyMs != null && latencyMs.getCount() > 0) {
      out.printf(Locale.ROOT, "beam-llama: latency per sample: mean %.0f ms, min %d ms, max %d ms%n",
          latencyMs.getMean(), latencyMs.getMin(), latencyMs.getMax());
    }
    out.printf(Locale.ROOT, "beam-llama: engine loaded %d time(s): once per worker JVM that ran the generate step%n", engineLoads);
    out.printf(Locale.ROOT, "beam-llama: completions: %s-*%s%n", job.outputPrefix(), job.outputFormat().extension());
    out.printf(Locale.ROOT, "beam-llama: dead letters: %s-*.jsonl%n", job.errorsPrefix());
  }

  /** Each field no record setting reads, with how many records carried it. */
  private static SortedMap<String, Long> unreadFields(MetricQueryResults metrics) {
    SortedMap<String, Long> fields = new TreeMap<>();
    for (MetricResult<Long> c : metrics.getCounters()) {
      if (c.getName().getNamespace().equals(PromptIO.class.getName()) && c.getName().getName().startsWith(PromptIO.UNREAD_FIELD)) {
        fields.merge(c.getName().getName().substring(PromptIO.UNREAD_FIELD.length()), c.getAttempted(), Long::sum);
      }
    }
    return fields;
  }

  private static long counter(MetricQueryResults metrics, String namespace, String name) {
    long total = 0;
    for (MetricResult<Long> c : metrics.getCounters()) {
      if (c.getName().getNamespace().equals(namespace) && c.getName().getName().equals(name)) {
        total += c.getAttempted();
      }
    }
    return total;
  }

  private static DistributionResult distribution(MetricQueryResults metrics, String namespace, String name) {
    for (MetricResult<DistributionResult> d : metrics.getDistributions()) {
      if (d.getName().getNamespace().equals(namespace) && d.getName().getName().equals(name)) {
        return d.getAttempted();
      }
    }
    return null;
  }
}
